"""One tenant's streams: readers of the state and call streams, the extension-list syncer and
the re-sync listener put what they receive on one queue; one writer task stores it in order."""

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from channels.layers import get_channel_layer
from django.conf import settings

from ctiboard.cti.client import AuthenticationFailed, CTIClient, CTIError
from ctiboard.cti.events import CallEvent, ExtensionData, StateEvent
from ctiboard.lib.metrics import STREAM_RECONNECTS
from ctiboard.live import publish
from ctiboard.live.groups import ingest_group
from ctiboard.tenancy.models import ConnectionStatus, Tenant

from . import writer
from .database import database_unavailable, in_database_thread
from .outage import DatabaseOutage, DatabaseReach, stored_status

logger = logging.getLogger(__name__)

# A batch is whatever has arrived since the previous one (CTIBOARD_BATCH_INTERVAL apart at
# least, unless a full batch is waiting), up to this size: one transaction per event under
# light load, few large ones under heavy load.
MAX_BATCH = 500
# A batch this large means a sustained flood (a bootstrap, a busy K-Account): then the next one
# gathers for BUSY_INTERVAL at least. Per event a transaction of 10 costs about twice one of
# 100, and under such a load the wait is small beside the queue's.
BUSY_BATCH = 100
BUSY_INTERVAL = 0.05
# A stream that ends this close to its token renewal time ended for the renewal.
ROTATION_TOLERANCE = 0.1

StreamKind = Literal["states", "calls"]


@dataclass(frozen=True)
class TenantConfig:
    tenant_id: int
    account: str
    base_url: str
    username: str
    password: str

    @classmethod
    def of(cls, tenant: Tenant) -> "TenantConfig":
        return cls(
            tenant.pk, tenant.account, tenant.api_base_url, tenant.api_username, tenant.api_password
        )


class Backoff:
    """Exponential backoff with full jitter, capped, never shorter than ``floor``."""

    def __init__(self, base: float = 0.5, cap: float = 60.0, floor: float = 0.0) -> None:
        self.base, self.cap, self.floor, self.attempt = base, cap, floor, 0

    def next_delay(self) -> float:
        delay = random.uniform(0, min(self.cap, self.base * 2**self.attempt))
        self.attempt += 1
        return max(self.floor, delay)

    def reset(self) -> None:
        self.attempt = 0


@dataclass(frozen=True)
class _Opened:
    """Queue marker: a stream was accepted. For the state stream its bootstrap follows."""

    kind: StreamKind


@dataclass(frozen=True)
class _Lost:
    """Queue marker: a stream ended or failed and will be reopened (or not, if refused)."""

    kind: StreamKind
    status: ConnectionStatus
    reason: str


@dataclass(frozen=True)
class _Listed:
    """Queue marker: the extension list as /extensions/phone/data just answered it."""

    extensions: list[ExtensionData]


class _Stop:
    """Queue marker: everything before it is written, then the writer ends."""


_Item = StateEvent | CallEvent | _Opened | _Lost | _Listed | _Stop
_R = TypeVar("_R")


class TenantIngest:
    """Keeps one tenant's state and call streams open and stores what they say.

    Readers (one per stream, the extension-list syncer, the re-sync listener) only put what they
    receive on one queue; a single writer stores it in order, so every stored change gets the
    tenant's next sequence number. On cancellation the streams close first, then the writer
    stores what is queued (up to ``drain_timeout``).
    """

    def __init__(
        self,
        config: TenantConfig,
        *,
        read_timeout: float | None = None,
        sync_interval: float | None = None,
        batch_interval: float | None = None,
        bootstrap_window: float = 5.0,
        drain_timeout: float = 10.0,
        call_grace: float = 10.0,
        database: DatabaseReach | None = None,
    ) -> None:
        self.config = config
        # What the worker's lease rounds say of the database (the supervisor's, shared).
        self.database = database or DatabaseReach()
        self.read_timeout = read_timeout or settings.CTIBOARD_STREAM_READ_TIMEOUT
        self.sync_interval = sync_interval or settings.CTIBOARD_EXTENSION_SYNC_INTERVAL
        self.batch_interval = (
            settings.CTIBOARD_BATCH_INTERVAL if batch_interval is None else batch_interval
        )
        self.bootstrap_window = bootstrap_window
        self.drain_timeout = drain_timeout
        # Store what is queued when stopped; not when the lease was lost (see Supervisor).
        self.drain_on_stop = True
        # A leg on an idle line unheard of this long ended unseen (see tracking.sweep_idle).
        self.call_grace = call_grace
        self.queue: asyncio.Queue[_Item] = asyncio.Queue()
        self.state: writer.TenantState | None = None
        self.links: dict[StreamKind, tuple[ConnectionStatus, str] | None] = {
            "states": None,
            "calls": None,
        }
        self._status_written: tuple[ConnectionStatus, str] | None = None
        # What the pulse says (live.publish.tenant_pulse): the status payload last stored, and
        # the sequence number of the last batch committed (and so already sent).
        self.status_payload: dict[str, Any] | None = None
        self.committed_seq = 0
        self._sync_now = asyncio.Event()
        self._call_streams: set[_CallStream] = set()
        self._outage = DatabaseOutage(config.account, config.tenant_id)
        # After a database outage, since when the queue holds what it kept from the boards;
        # None once it is stored (the boards may say "Live" again).
        self._behind_since: float | None = None
        # Items the writer has taken from the queue, and how many it must have taken to have
        # stored that backlog (a busy tenant's queue is seldom empty).
        self._taken = self._behind_until = 0
        # The held state changed (the outage noticed, or its backlog stored): pulse now.
        self._pulse_now = asyncio.Event()

    @property
    def account(self) -> str:
        return self.config.account

    async def run(self) -> None:
        self.state = await self._database(writer.load_state, self.config.tenant_id)
        self.committed_seq = self.state.seq
        # Until both streams are open again, the stored status must not say "connected": a
        # worker killed while connected left it so (boards would call old tiles live).
        await self._publish(ConnectionStatus.RECONNECTING, "connecting to the PBX")
        client = self._client()
        write_task = asyncio.create_task(self._write(), name=f"ingest-write-{self.account}")
        readers = [
            asyncio.create_task(self._follow_states(client), name=f"states-{self.account}"),
            asyncio.create_task(self._follow_calls(client), name=f"calls-{self.account}"),
            asyncio.create_task(self._sync_periodically(client), name=f"sync-{self.account}"),
            asyncio.create_task(self._listen_for_requests(), name=f"requests-{self.account}"),
            asyncio.create_task(self._pulse(), name=f"pulse-{self.account}"),
        ]
        try:
            done, _ = await asyncio.wait(
                [write_task, *readers], return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                task.result()  # a crash: the supervisor starts the tenant afresh
            raise RuntimeError(f"{self.account}: an ingest task ended on its own")
        finally:
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
            await client.aclose()
            if self.drain_on_stop:
                await self._drain(write_task)
            else:
                # The lease is gone: another worker may be writing this tenant already.
                write_task.cancel()
                await asyncio.gather(write_task, return_exceptions=True)

    async def _drain(self, write_task: "asyncio.Task[None]") -> None:
        if write_task.done():
            return
        self.queue.put_nowait(_Stop())
        try:
            await asyncio.wait_for(asyncio.shield(write_task), self.drain_timeout)
        except TimeoutError:
            logger.error(
                "%s: %d queued events not stored within %.0fs of stopping",
                self.account,
                self.queue.qsize(),
                self.drain_timeout,
            )
            write_task.cancel()
            await asyncio.gather(write_task, return_exceptions=True)

    def _client(self) -> CTIClient:
        return CTIClient(
            self.config.base_url,
            self.config.username,
            self.config.password,
            self.config.account,
            stream_read_timeout=self.read_timeout,
        )

    # --- readers ----------------------------------------------------------------------------

    async def _follow_states(self, client: CTIClient) -> None:
        retry = _Retry()
        while True:
            rotate_at = math.inf

            def opened(renew_at: float) -> None:
                nonlocal rotate_at
                rotate_at = renew_at
                retry.reset()
                self.queue.put_nowait(_Opened("states"))

            try:
                await self._sync_extensions(client)
                async with contextlib.aclosing(client.stream_states(on_open=opened)) as stream:
                    async for event in stream:
                        self.queue.put_nowait(event)
                if time.monotonic() >= rotate_at - ROTATION_TOLERANCE:
                    continue  # renewed ahead of the token's expiry; the bootstrap follows
                reason, (status, delay) = "the PBX closed the state stream", retry.closed()
            except CTIError as exc:
                reason, (status, delay) = str(exc), retry.failed(exc)
            logger.warning("%s: %s; retrying in %.1fs", self.account, reason, delay)
            STREAM_RECONNECTS.labels(self.account, status.value).inc()
            self.queue.put_nowait(_Lost("states", status, reason))
            await asyncio.sleep(delay)

    async def _follow_calls(self, client: CTIClient) -> None:
        """The call stream sends no history: renewing it ahead of the token's expiry opens the
        next stream first and closes the old one once the new one is accepted, so no event
        falls into a gap. Events seen on both are stored once (the tracking is idempotent)."""
        retry = _Retry()
        successor: _CallStream | None = None
        try:
            while True:
                current = successor or _CallStream(self, client, fresh_token=False)
                successor = None
                try:
                    if await current.wait_open():
                        retry.reset()
                        successor = await self._renew_before_expiry(client, current)
                        if successor is not None:
                            continue
                    await current.task
                    if time.monotonic() >= current.rotate_at - ROTATION_TOLERANCE:
                        continue
                    reason, (status, delay) = "the PBX closed the call stream", retry.closed()
                except CTIError as exc:
                    reason, (status, delay) = str(exc), retry.failed(exc)
                logger.warning("%s: %s; retrying in %.1fs", self.account, reason, delay)
                self.queue.put_nowait(_Lost("calls", status, reason))
                await asyncio.sleep(delay)
        finally:
            for stream in list(self._call_streams):
                await stream.close()

    async def _renew_before_expiry(
        self, client: CTIClient, current: "_CallStream"
    ) -> "_CallStream | None":
        """Wait until shortly before ``current`` must be renewed, then open its successor with
        a fresh token; returns it once it is accepted (``current`` is closed then), or None if
        ``current`` ended first or the successor failed (``current`` runs out by itself)."""
        if math.isinf(current.rotate_at):
            return None
        lead = min(5.0, max(0.05, (current.rotate_at - time.monotonic()) / 10))
        done, _ = await asyncio.wait(
            {current.task}, timeout=max(0.0, current.rotate_at - lead - time.monotonic())
        )
        if done:
            return None
        successor = _CallStream(self, client, fresh_token=True)
        if await successor.wait_open():
            await current.close()
            return successor
        try:
            await successor.task
        except CTIError as exc:
            logger.warning("%s: could not renew the call stream early: %s", self.account, exc)
        return None

    async def _sync_extensions(self, client: CTIClient) -> None:
        try:
            listed = await client.extensions()
        except AuthenticationFailed:
            raise
        except CTIError as exc:
            # The streams work without it; the next sync catches up.
            logger.warning("%s: extension list unavailable: %s", self.account, exc)
            return
        self.queue.put_nowait(_Listed(listed))

    async def _sync_periodically(self, client: CTIClient) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sync_now.wait(), self.sync_interval)
            if self._sync_now.is_set():
                self._sync_now.clear()
                logger.info("%s: re-syncing the extension list on request", self.account)
            try:
                await self._sync_extensions(client)
            except CTIError as exc:
                logger.warning("%s: extension sync failed: %s", self.account, exc)

    def request_sync(self) -> None:
        """Re-sync the extension list now (the admin's action reaches this over the layer)."""
        self._sync_now.set()

    async def _listen_for_requests(self) -> None:
        layer = get_channel_layer()
        if layer is None:
            await asyncio.Event().wait()
            return
        group = ingest_group(self.config.tenant_id)
        channel = ""
        while True:
            try:
                channel = channel or await layer.new_channel()
                # Joined again now and then: the in-memory layer forgets group members after
                # a day.
                await layer.group_add(group, channel)
                try:
                    message = await asyncio.wait_for(layer.receive(channel), 3600)
                except TimeoutError:
                    continue
                if message.get("type") == "ingest.resync":
                    self.request_sync()
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await asyncio.shield(layer.group_discard(group, channel))
                raise
            except Exception as exc:  # the channel layer is away: requests wait for it
                logger.warning("%s: channel layer unavailable: %r", self.account, exc)
                channel = ""
                await asyncio.sleep(5.0)

    # --- the writer -------------------------------------------------------------------------

    async def _write(self) -> None:
        assert self.state is not None
        pending: set[str] = set()  # extensions the current bootstrap has not mentioned yet
        deadline = 0.0
        # The state stream counts as connected once its bootstrap is stored, not when it
        # opens: a board that says "Live" must show the PBX's states already.
        bootstrapping = False
        next_sweep = time.monotonic() + self.call_grace / 2
        last_batch = -math.inf
        interval = self.batch_interval
        while True:
            if pending and time.monotonic() >= deadline:
                await self._store(writer.mark_unknown, pending)
                pending = set()
            if bootstrapping and not pending:
                bootstrapping = False
                await self._link("states", ConnectionStatus.CONNECTED, "")
            if time.monotonic() >= next_sweep:
                # A stalled state stream is noticed only after read_timeout: until then its
                # lines look current, so a leg must be quiet for that long as well.
                await self._store(writer.sweep_calls, self.call_grace + self.read_timeout)
                next_sweep = time.monotonic() + self.call_grace / 2
            wake = min(deadline if pending else math.inf, next_sweep)
            try:
                item = await asyncio.wait_for(self.queue.get(), max(0.0, wake - time.monotonic()))
            except TimeoutError:
                continue
            # Each batch is a transaction and a message to every open board: under load, wait
            # for the interval since the last one to gather what arrives meanwhile.
            gather_until = last_batch + interval
            if time.monotonic() < gather_until and self.queue.qsize() < MAX_BATCH:
                await asyncio.sleep(gather_until - time.monotonic())
            last_batch = time.monotonic()
            items = [item]
            while len(items) < MAX_BATCH and not self.queue.empty():
                items.append(self.queue.get_nowait())
            self._taken += len(items)
            busy = len(items) >= BUSY_BATCH
            interval = max(self.batch_interval, BUSY_INTERVAL) if busy else self.batch_interval
            batch: list[StateEvent | CallEvent] = []
            for item in items:
                if isinstance(item, StateEvent | CallEvent):
                    batch.append(item)
                    if isinstance(item, StateEvent) and item.extension in pending:
                        pending.discard(item.extension)
                        # Bootstrap frames come back to back: wait as long again for the rest.
                        deadline = time.monotonic() + self.bootstrap_window
                    continue
                if batch:
                    await self._store(writer.apply, batch)
                    batch = []
                if isinstance(item, _Stop):
                    await self._stopped()
                    return
                if isinstance(item, _Opened | _Lost) and item.kind == "states":
                    writer.state_stream_changed(self.state)  # stored lines are stale now
                if isinstance(item, _Listed):
                    await self._store(writer.sync_extensions, item.extensions)
                elif isinstance(item, _Opened):
                    if item.kind == "states":
                        # The bootstrap replaces what is stored: whoever it leaves out is unknown.
                        pending = {n for n, e in self.state.extensions.items() if e.active}
                        deadline = time.monotonic() + self.bootstrap_window
                        bootstrapping = True
                    else:
                        # Hangups may have fallen into the gap: idle lines have no calls.
                        await self._store(writer.reconcile_calls)
                        await self._link(item.kind, ConnectionStatus.CONNECTED, "")
                elif isinstance(item, _Lost):
                    if item.kind == "states":
                        bootstrapping = False  # a bootstrap cut short connects nothing
                    await self._link(item.kind, item.status, item.reason)
            if batch:
                await self._store(writer.apply, batch)
            if self._behind_since is not None and self._taken >= self._behind_until:
                self._behind_since = None  # stored what the outage held back
                self._pulse_now.set()
            if bootstrapping and not pending:
                bootstrapping = False
                await self._link("states", ConnectionStatus.CONNECTED, "")

    async def _store(self, write: Callable[..., _R], *args: object) -> _R:
        """Run one store function on the tenant's state until it succeeds (the store functions
        are idempotent; after a failure the state is reloaded first, it may be ahead of the
        database). What it was given is kept meanwhile: nothing is lost."""
        return await self._database(write, *args, with_state=True)

    async def _database(
        self, function: Callable[..., _R], *args: object, with_state: bool = False
    ) -> _R:
        """Run ``function`` in the database thread until it succeeds. While the database is
        away it retries with backoff for as long as the lease holds (the supervisor cancels
        the tenant when it lapses); other errors are retried twice, then raised, so the
        supervisor starts the tenant afresh."""
        reload, failures = False, 0
        while True:
            try:
                result = await in_database_thread(self._call, function, args, with_state, reload)
                if with_state and self.state is not None:
                    self.committed_seq = self.state.seq
            except Exception as exc:
                if database_unavailable(exc):
                    delay = self._outage.failed(exc, self.queue.qsize())
                    if self._outage.attempts == 2:  # more than a connection the server ended
                        self._pulse_now.set()
                        await self._outage.announce(
                            self._outage.unavailable_status(self._shown_status())
                        )
                else:
                    failures += 1
                    if failures == 3:
                        raise
                    logger.exception("%s: storing failed; retrying", self.account)
                    delay = 0.2 * failures
                # The database's return (a lease round reaching it) cuts the wait short.
                await self.database.changed(delay)
                reload = True
                continue
            if self._outage.ongoing:
                announced = self._outage.noticed
                # What queued up meanwhile is still to be stored: behind until it is.
                self._behind_since = self._outage.held_since
                self._behind_until = self._taken + self.queue.qsize()
                self._outage.recovered()
                if announced:
                    await self._outage.announce(
                        await in_database_thread(stored_status, self.config.tenant_id)
                    )
            return result

    def _call(
        self, function: Callable[..., _R], args: tuple[object, ...], with_state: bool, reload: bool
    ) -> _R:
        """In the database thread: one attempt, on a reloaded state after a failed one."""
        if not with_state:
            return function(*args)
        if reload or self.state is None:
            self.state = writer.load_state(self.config.tenant_id)
        return function(self.state, *args)

    def _shown_status(self) -> str:
        if self._status_written is not None:
            return self._status_written[0].value
        return ConnectionStatus.RECONNECTING.value

    async def _link(self, kind: StreamKind, status: ConnectionStatus, detail: str) -> None:
        """One stream's health changed: store the tenant's status if the combination did."""
        self.links[kind] = (status, detail)
        links = {k: v for k, v in self.links.items() if v is not None}
        problems = [(k, v) for k, v in links.items() if v[0] != ConnectionStatus.CONNECTED]
        if problems:
            refused = any(v[0] == ConnectionStatus.MISCONFIGURED for _, v in problems)
            detail = "; ".join(
                f"{'state' if k == 'states' else 'call'} stream: {v[1]}" for k, v in problems
            )
            status = ConnectionStatus.MISCONFIGURED if refused else ConnectionStatus.RECONNECTING
            await self._publish(status, detail)
        elif len(links) == len(self.links):
            await self._publish(ConnectionStatus.CONNECTED, "")
        # else: the other stream has not been accepted yet

    async def _publish(self, status: ConnectionStatus, detail: str) -> None:
        if (status, detail) != self._status_written:
            await self._database(writer.set_status, self.config.tenant_id, status, detail)
            self._status_written = (status, detail)
            self.status_payload = await self._database(_status_payload, self.config.tenant_id)

    async def _pulse(self) -> None:
        """Tell the boards every PULSE_INTERVAL that this tenant is streamed, where it is and
        how its PBX link is: they notice a silent worker or channel layer, and repair what a
        lost message cost them (live.publish). While the database is away, or a change waits
        to be stored, the pulse says since when: the boards go stale at once, not after the
        pulse timeout; the pulse after it is stored makes them live again."""
        while True:
            if self.status_payload is not None:
                held = [
                    t
                    for t in (self.database.lost_at, self._outage.held_since, self._behind_since)
                    if t
                ]
                await publish.tenant_pulse(
                    self.config.tenant_id,
                    self.committed_seq,
                    self.status_payload,
                    held_since=min(held) if held else None,
                )
            waits = [
                asyncio.ensure_future(self.database.changed(publish.PULSE_INTERVAL)),
                asyncio.ensure_future(self._pulse_now.wait()),
            ]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()
            self._pulse_now.clear()

    async def _stopped(self) -> None:
        """Nobody streams the tenant now: say so, unless another worker has taken over and
        written a status of its own meanwhile."""
        if self._status_written is None:
            return
        try:
            await in_database_thread(
                writer.set_status,
                self.config.tenant_id,
                ConnectionStatus.RECONNECTING,
                "the ingest worker stopped",
                if_status=self._status_written[0],
            )
        except Exception as exc:
            logger.warning("%s: could not record the stop: %r", self.account, exc)


class _CallStream:
    """One call-stream connection, read into the ingest's queue by a task of its own."""

    def __init__(self, ingest: TenantIngest, client: CTIClient, *, fresh_token: bool) -> None:
        self.ingest = ingest
        self.rotate_at = math.inf
        self.opened = asyncio.Event()
        self.task = asyncio.create_task(self._run(client, fresh_token))
        ingest._call_streams.add(self)
        self.task.add_done_callback(lambda _: ingest._call_streams.discard(self))

    async def _run(self, client: CTIClient, fresh_token: bool) -> None:
        if fresh_token:
            await client.current_tokens(force_refresh=True)
        async with contextlib.aclosing(client.stream_calls(on_open=self._opened)) as stream:
            async for event in stream:
                self.ingest.queue.put_nowait(event)

    def _opened(self, rotate_at: float) -> None:
        self.rotate_at = rotate_at
        self.opened.set()
        self.ingest.queue.put_nowait(_Opened("calls"))

    async def wait_open(self) -> bool:
        """Until the server accepted the stream (True) or it ended before that (False)."""
        opened = asyncio.create_task(self.opened.wait())
        try:
            await asyncio.wait({opened, self.task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            opened.cancel()
        return self.opened.is_set()

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


class _Retry:
    """When one stream reconnects after it ended or failed, and what the tenant's status is."""

    # Tokens refused right after a successful login/refresh this often in a row: not a hiccup
    # of the server any more, but a right the account lacks.
    REFUSALS = 3

    def __init__(self) -> None:
        self.backoff = Backoff()
        # A refused login may be the PBX's hiccup: retried after a second, then ever more
        # rarely (the client holds further logins back alike). A corrected password restarts
        # the tenant's task at once (the supervisor watches the credentials).
        self.auth_backoff = Backoff(base=1.0, cap=60.0, floor=1.0)
        self.refusals = 0

    def reset(self) -> None:
        """The stream was accepted."""
        self.backoff.reset()
        self.auth_backoff.reset()
        self.refusals = 0

    def closed(self) -> tuple[ConnectionStatus, float]:
        return ConnectionStatus.RECONNECTING, self.backoff.next_delay()

    def failed(self, error: CTIError) -> tuple[ConnectionStatus, float]:
        self.refusals = self.refusals + 1 if error.status == 401 else 0
        if isinstance(error, AuthenticationFailed) or self.refusals >= self.REFUSALS:
            return ConnectionStatus.MISCONFIGURED, self.auth_backoff.next_delay()
        # At least what the server asked for (Retry-After), capped.
        delay = max(self.backoff.next_delay(), min(error.retry_after or 0.0, self.backoff.cap))
        return ConnectionStatus.RECONNECTING, delay


def _status_payload(tenant_id: int) -> dict[str, Any]:
    return Tenant.objects.only(*Tenant.STATUS_FIELDS).get(pk=tenant_id).status_payload()
