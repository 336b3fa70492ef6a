"""``/readyz`` and ``/metrics``. Liveness (``/healthz``) is in ctiboard.board.views.

``/readyz`` answers 200 when this web process can serve the board with live data: the database
answers, a message makes the round trip through the channel layer, and every enabled tenant is
held by an ingest worker whose heartbeat is live. Otherwise 503; the JSON body says which check
failed and why. Keep both endpoints away from the internet at the proxy (compose.yaml does).
"""

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from ctiboard.ingest.leases import live_holders
from ctiboard.tenancy.models import Tenant

logger = logging.getLogger(__name__)

CHECK_TIMEOUT = 3.0

Check = dict[str, Any]


def _database() -> Check:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"ok": True}


async def _channel_layer() -> Check:
    layer = get_channel_layer()
    if layer is None:
        return {"ok": False, "error": "no channel layer configured"}
    channel = await layer.new_channel("readyz.")
    started = time.perf_counter()
    receiver = asyncio.ensure_future(layer.receive(channel))
    try:
        # Pub/sub delivers only once the subscription is in place on the server: resend
        # rather than fail on a first message that overtook it.
        for _ in range(4):
            await layer.send(channel, {"type": "readyz.ping"})
            done, _ = await asyncio.wait({receiver}, timeout=0.5)
            if done:
                break
        else:
            return {"ok": False, "error": "a message sent through the layer never came back"}
    finally:
        if not receiver.done():
            receiver.cancel()  # also drops the probe's subscription
            await asyncio.gather(receiver, return_exceptions=True)
    message = receiver.result()
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    await _forget(layer, channel)
    if message.get("type") != "readyz.ping":
        return {"ok": False, "error": f"unexpected message {message.get('type')!r}"}
    return {"ok": True, "backend": type(layer).__name__, "round_trip_ms": elapsed_ms}


async def _forget(layer: Any, channel: str) -> None:
    """Drop the probe channel. The channel layer API has no call for it; the Redis pub/sub
    layer unsubscribes a channel whose receive is cancelled (as when a consumer exits), so
    cancel one — otherwise every probe would leave a subscription behind."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(layer.receive(channel), 0.01)


def _workers() -> Check:
    tenants = dict(Tenant.objects.filter(enabled=True).values_list("pk", "account"))
    holders = live_holders(tenants.keys())
    unserved = sorted(account for pk, account in tenants.items() if pk not in holders)
    result: Check = {
        "ok": not unserved,
        "tenants": len(tenants),
        "workers": sorted(set(holders.values())),
    }
    if unserved:
        result["error"] = "no live ingest worker holds these tenants"
        result["unserved"] = unserved
    return result


async def _run(check: Callable[[], Awaitable[Check]]) -> Check:
    try:
        return await asyncio.wait_for(check(), CHECK_TIMEOUT)
    except TimeoutError:
        return {"ok": False, "error": f"no answer within {CHECK_TIMEOUT:g}s"}
    except Exception as exc:
        logger.warning("readiness check failed: %s", exc)
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


async def _may_see_details(request: HttpRequest) -> bool:
    """Probes on the machine itself (orchestrators, the tests) and staff see names."""
    try:
        if ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback:
            return True
    except ValueError:
        pass
    user = await request.auser()
    return bool(user.is_active and user.is_staff)


@never_cache
@require_GET
async def readyz(request: HttpRequest) -> HttpResponse:
    checks = {
        "database": await _run(sync_to_async(_database)),
        "channel_layer": await _run(_channel_layer),
        "workers": await _run(sync_to_async(_workers)),
    }
    ready = all(check["ok"] for check in checks.values())
    if not await _may_see_details(request):
        # K-Accounts and worker ids are nobody else's business: counts only.
        workers = checks["workers"]
        workers["workers"] = len(workers.get("workers", []))
        if "unserved" in workers:
            workers["unserved"] = len(workers["unserved"])
    return JsonResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """This process's metrics (each web process and worker has its own; scrape them all)."""
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
