"""The delivery worker: sends what the outbox holds (``manage.py deliver_webhooks``; the demo
runs it beside the ingest worker). Any number of them may run.

- **Claims.** A worker takes rows with one conditional UPDATE: ``status`` pending → sending,
  its claim token and ``claimed_until = now() + lease`` (database time), only where the row is
  still due. The database serialises UPDATEs of a row (PostgreSQL re-checks the WHERE after a
  concurrent writer commits; SQLite has one writer), so each row goes to one worker; results
  are recorded only while the claim token still matches. A worker that died mid-send leaves
  its claim to expire; then the row is due again (at-least-once: receivers deduplicate on
  ``X-Ctiboard-Delivery``).
- **Isolation.** Requests go out with httpx on this worker's event loop, at most
  ``concurrency`` at a time and one per webhook (in order, unless a retry intervenes), each
  with a total deadline of ``timeout`` seconds. Database work runs in a thread of its own.
  The ingest worker only ever writes rows: a slow or dead endpoint never reaches it.
- **Retries.** A failure (no answer in time, connection error, a status other than 2xx) is
  retried after ``retry_base * 2**(attempt-1)`` seconds (at most ``retry_cap``); after
  ``max_attempts`` the delivery is failed. The admin's delivery log shows every row.
- **Addresses.** Tenant administrators choose the URLs, so loopback, private, link-local and
  other non-public addresses are refused unless ``allow_private_networks`` (a check of the
  resolved address before sending; it does not defend against DNS rebinding).
"""

import asyncio
import contextlib
import ipaddress
import logging
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import httpx
from django.db import close_old_connections, connections
from django.db.models import DateTimeField, ExpressionWrapper, F, Min, Q
from django.db.models.functions import Now

from ctiboard import PRODUCT_NAME, __version__

from . import payloads
from .models import DeliveryStatus, WebhookDelivery

logger = logging.getLogger(__name__)

_R = TypeVar("_R")


@dataclass(frozen=True)
class Result:
    status: int | None  # the HTTP status, if an answer came
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def _db_now_plus(seconds: float) -> ExpressionWrapper:
    return ExpressionWrapper(Now() + timedelta(seconds=seconds), output_field=DateTimeField())


def _due() -> Q:
    return Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=Now()) | Q(
        status=DeliveryStatus.SENDING, claimed_until__lte=Now()
    )


class Dispatcher:
    def __init__(
        self,
        *,
        concurrency: int = 8,
        timeout: float = 10.0,
        poll_interval: float = 1.0,
        max_attempts: int = 8,
        retry_base: float = 10.0,
        retry_cap: float = 3600.0,
        allow_private_networks: bool = False,
        worker_id: str | None = None,
    ) -> None:
        if concurrency < 1 or timeout <= 0 or max_attempts < 1:
            raise ValueError("concurrency, timeout and max_attempts must be positive")
        self.concurrency = concurrency
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.max_attempts = max_attempts
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.allow_private_networks = allow_private_networks
        self.worker_id = worker_id or uuid.uuid4().hex[:12]
        # A claim outlives any send (deadline ``timeout``) by far: only a dead worker's expires.
        self.lease = max(60.0, timeout * 3)
        self._db_thread = ThreadPoolExecutor(1, thread_name_prefix="webhooks-db")

    # --- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        logger.info("webhook delivery worker %s started", self.worker_id)
        in_flight: dict[int, tuple[WebhookDelivery, asyncio.Task[None]]] = {}
        client = _client(self.timeout)
        try:
            while True:
                free = self.concurrency - len(in_flight)
                claimed: list[WebhookDelivery] = []
                if free > 0:
                    try:
                        claimed = await self._db(self._claim, free, set(in_flight))
                    except Exception:
                        logger.exception("claiming webhook deliveries failed")
                for delivery in claimed:
                    task = asyncio.create_task(self._send(client, delivery))
                    in_flight[delivery.webhook_id] = (delivery, task)
                tasks = {task for _, task in in_flight.values()}
                if tasks:
                    # All slots busy: wait for one; else also look for new rows now and then.
                    wait = None if len(in_flight) >= self.concurrency else self.poll_interval
                    await asyncio.wait(tasks, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                else:
                    await asyncio.sleep(self.poll_interval)
                for webhook_id, (_, task) in list(in_flight.items()):
                    if task.done():
                        del in_flight[webhook_id]
        finally:
            for _, task in in_flight.values():
                task.cancel()
            await asyncio.gather(*(task for _, task in in_flight.values()), return_exceptions=True)
            await client.aclose()
            unfinished = [delivery.pk for delivery, _ in in_flight.values()]
            with contextlib.suppress(Exception):
                await self._db(self._release, unfinished)
            with contextlib.suppress(Exception):
                await self._db(connections.close_all)
            self._db_thread.shutdown(wait=False)
            logger.info("webhook delivery worker %s stopped", self.worker_id)

    async def _db(self, function: Callable[..., _R], *args: Any) -> _R:
        """ORM work in this worker's own database thread (never the ingest's)."""

        def call() -> _R:
            close_old_connections()
            try:
                return function(*args)
            finally:
                close_old_connections()

        return await asyncio.get_running_loop().run_in_executor(self._db_thread, call)

    # --- database (in the thread) -----------------------------------------------------------

    def _claim(self, limit: int, busy: set[int]) -> list[WebhookDelivery]:
        """Claim the oldest due delivery of up to ``limit`` webhooks not sending right now."""
        firsts = list(
            WebhookDelivery.objects.filter(_due(), webhook__enabled=True)
            .exclude(webhook_id__in=busy)
            .values("webhook_id")
            .annotate(first=Min("pk"))
            .order_by("first")
            .values_list("first", flat=True)[:limit]
        )
        if not firsts:
            return []
        token = uuid.uuid4().hex
        WebhookDelivery.objects.filter(_due(), pk__in=firsts).update(
            status=DeliveryStatus.SENDING,
            claim_token=token,
            claimed_until=_db_now_plus(self.lease),
            attempts=F("attempts") + 1,
            last_attempt_at=Now(),
        )
        return list(
            WebhookDelivery.objects.filter(claim_token=token, status=DeliveryStatus.SENDING)
            .select_related("webhook")
            .order_by("pk")
        )

    def _record(self, delivery: WebhookDelivery, result: Result) -> None:
        mine = WebhookDelivery.objects.filter(
            pk=delivery.pk, claim_token=delivery.claim_token, status=DeliveryStatus.SENDING
        )
        outcome: dict[str, Any] = {
            "response_status": result.status,
            "last_error": result.error[:500],
            "claim_token": "",
            "claimed_until": None,
        }
        if result.ok:
            mine.update(status=DeliveryStatus.DELIVERED, delivered_at=Now(), **outcome)
        elif delivery.attempts >= self.max_attempts:
            mine.update(status=DeliveryStatus.FAILED, **outcome)
            logger.warning(
                "webhook delivery %s failed for good after %d attempts: %s",
                delivery.pk,
                delivery.attempts,
                result.error or result.status,
            )
        else:
            delay = min(self.retry_cap, self.retry_base * 2 ** (delivery.attempts - 1))
            mine.update(
                status=DeliveryStatus.PENDING, next_attempt_at=_db_now_plus(delay), **outcome
            )

    def _release(self, pks: list[int]) -> None:
        """Stopping: hand unfinished claims back at once instead of after the lease."""
        if pks:
            WebhookDelivery.objects.filter(pk__in=pks, status=DeliveryStatus.SENDING).update(
                status=DeliveryStatus.PENDING, claim_token="", claimed_until=None
            )

    # --- sending ----------------------------------------------------------------------------

    async def _send(self, client: httpx.AsyncClient, delivery: WebhookDelivery) -> None:
        try:
            result = await self._request(client, delivery)
        except Exception as exc:  # a bug must not kill the loop; the row is retried
            logger.exception("webhook delivery %s: unexpected error", delivery.pk)
            result = Result(None, f"{type(exc).__name__}: {exc}")
        if not result.ok:
            logger.info(
                "webhook delivery %s (attempt %d) to %s: %s",
                delivery.pk,
                delivery.attempts,
                delivery.webhook.url,
                result.error or f"HTTP {result.status}",
            )
        try:
            await self._db(self._record, delivery, result)
        except Exception:
            logger.exception("webhook delivery %s: could not record the result", delivery.pk)

    async def _request(self, client: httpx.AsyncClient, delivery: WebhookDelivery) -> Result:
        secret = delivery.webhook.secret
        if not secret:
            return Result(None, "the webhook has no (readable) secret: enter it again")
        request = client.build_request(
            delivery.method,
            delivery.url,
            content=delivery.body.encode() if delivery.method != "GET" else None,
            headers={"Content-Type": delivery.content_type} if delivery.content_type else None,
        )
        if not self.allow_private_networks:
            refused = await _non_public(request.url)
            if refused:
                return Result(None, refused)
        signed = request.url.query if delivery.method == "GET" else request.content
        timestamp = int(time.time())
        request.headers[payloads.TIMESTAMP_HEADER] = str(timestamp)
        request.headers[payloads.SIGNATURE_HEADER] = payloads.sign(secret, timestamp, signed)
        request.headers[payloads.EVENT_HEADER] = delivery.event
        # A test event is never stored: its id is its uuid ("test-…").
        request.headers[payloads.DELIVERY_HEADER] = str(delivery.pk or delivery.uuid)
        try:
            async with asyncio.timeout(self.timeout):
                response = await client.send(request, stream=True)
                await response.aclose()  # the status is all we need; never read a huge body
        except TimeoutError:
            return Result(None, f"no answer within {self.timeout:g}s")
        except httpx.HTTPError as exc:
            return Result(None, f"{type(exc).__name__}: {exc}"[:500])
        if response.is_redirect:
            return Result(response.status_code, f"redirected to {response.headers.get('location')}")
        return Result(response.status_code, "" if response.is_success else response.reason_phrase)


def _client(timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": f"{PRODUCT_NAME}/{__version__} (webhooks)"},
    )


async def send_test(
    delivery: WebhookDelivery, *, allow_private_networks: bool, timeout: float = 10.0
) -> Result:
    """Send an unstored delivery (``outbox.test_delivery``) at once, exactly as the delivery
    worker sends the outbox's (address check, signature, headers, deadline); no retries."""
    dispatcher = Dispatcher(timeout=timeout, allow_private_networks=allow_private_networks)
    try:
        async with _client(timeout) as client:
            return await dispatcher._request(client, delivery)
    finally:
        dispatcher._db_thread.shutdown(wait=False)


async def _non_public(url: httpx.URL) -> str:
    """Why ``url`` must not be called (a non-public address), or ""."""
    host = url.host
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, url.port or 443, type=socket.SOCK_STREAM
            )
        except OSError:
            return ""  # httpx reports the failure to resolve
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    for address in addresses:
        if not address.is_global or address.is_multicast:
            return f"{host} is a non-public address ({address}); refused"
    return ""
