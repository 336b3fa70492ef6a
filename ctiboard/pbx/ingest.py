"""The ingest worker: one supervised stream consumer per enabled tenant."""

import asyncio
import logging
import random
import time
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.conf import settings

from ctiboard.cti.client import AuthenticationFailed, CTIClient, CTIError
from ctiboard.cti.events import StateEvent

from . import store
from .models import ConnectionStatus, Tenant

logger = logging.getLogger(__name__)

# A batch is whatever has arrived while the previous one was written, up to this size:
# one transaction per event under light load, few large ones under heavy load.
MAX_BATCH = 500


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


class _Connected:
    """Queue marker: a stream (re)connected, the next events are its bootstrap."""


class TenantIngest:
    """Keeps one tenant's state stream open and stores what it says."""

    def __init__(
        self,
        config: TenantConfig,
        *,
        read_timeout: float | None = None,
        sync_interval: float | None = None,
        bootstrap_window: float = 5.0,
    ) -> None:
        self.config = config
        self.read_timeout = read_timeout or settings.CTIBOARD_STREAM_READ_TIMEOUT
        self.sync_interval = sync_interval or settings.CTIBOARD_EXTENSION_SYNC_INTERVAL
        self.bootstrap_window = bootstrap_window
        self.queue: asyncio.Queue[StateEvent | _Connected] = asyncio.Queue()
        self.state: store.TenantState | None = None

    @property
    def account(self) -> str:
        return self.config.account

    async def run(self) -> None:
        self.state = await sync_to_async(store.load_state)(self.config.tenant_id)
        writer = asyncio.create_task(self._write(), name=f"ingest-write-{self.account}")
        try:
            await self._read_forever()
        finally:
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    async def _read_forever(self) -> None:
        backoff = Backoff()
        # Refused credentials will not heal by retrying: knock rarely. A corrected password
        # restarts this task at once (the supervisor watches the credentials).
        auth_backoff = Backoff(base=60.0, cap=900.0, floor=30.0)
        while True:
            try:
                async with self._client() as client:
                    await self._sync_extensions(client)
                    syncer = asyncio.create_task(self._sync_periodically(client))
                    try:
                        connected = False
                        async for event in client.stream_states():
                            if not connected:
                                connected = True
                                backoff.reset()
                                auth_backoff.reset()
                                self.queue.put_nowait(_Connected())
                                await self._status(ConnectionStatus.CONNECTED)
                            self.queue.put_nowait(event)
                    finally:
                        syncer.cancel()
                        await asyncio.gather(syncer, return_exceptions=True)
                reason = "the PBX closed the state stream"
                delay = backoff.next_delay()
                status = ConnectionStatus.RECONNECTING
            except AuthenticationFailed as exc:
                reason, delay = str(exc), auth_backoff.next_delay()
                status = ConnectionStatus.MISCONFIGURED
            except CTIError as exc:
                reason, delay = str(exc), backoff.next_delay()
                status = ConnectionStatus.RECONNECTING
            logger.warning("%s: %s; retrying in %.1fs", self.account, reason, delay)
            await self._status(status, reason)
            await asyncio.sleep(delay)

    def _client(self) -> CTIClient:
        return CTIClient(
            self.config.base_url,
            self.config.username,
            self.config.password,
            self.config.account,
            stream_read_timeout=self.read_timeout,
        )

    async def _sync_extensions(self, client: CTIClient) -> None:
        listed = await client.extensions()
        assert self.state is not None
        await sync_to_async(store.sync_extensions)(self.state, listed)

    async def _sync_periodically(self, client: CTIClient) -> None:
        while True:
            await asyncio.sleep(self.sync_interval)
            try:
                await self._sync_extensions(client)
            except CTIError as exc:
                logger.warning("%s: extension sync failed: %s", self.account, exc)

    async def _status(self, status: ConnectionStatus, detail: str = "") -> None:
        await sync_to_async(store.set_status)(self.config.tenant_id, status, detail)

    async def _write(self) -> None:
        assert self.state is not None
        pending: set[str] = set()  # extensions the current bootstrap has not mentioned yet
        deadline = 0.0
        while True:
            timeout = max(0.0, deadline - time.monotonic()) if pending else None
            try:
                item = await asyncio.wait_for(self.queue.get(), timeout)
            except TimeoutError:
                await sync_to_async(store.mark_unknown)(self.state, pending)
                pending = set()
                continue
            batch: list[StateEvent] = []
            while True:
                if isinstance(item, _Connected):
                    if batch:
                        await sync_to_async(store.apply_states)(self.state, batch)
                        batch = []
                    pending = {
                        number for number, ext in self.state.extensions.items() if ext.active
                    }
                    deadline = time.monotonic() + self.bootstrap_window
                else:
                    batch.append(item)
                    pending.discard(item.extension)
                if len(batch) >= MAX_BATCH or self.queue.empty():
                    break
                item = self.queue.get_nowait()
            if batch:
                await sync_to_async(store.apply_states)(self.state, batch)


class Supervisor:
    """Runs a TenantIngest per enabled tenant and follows changes made in the admin."""

    def __init__(self, poll_interval: float = 5.0, **ingest_options: float) -> None:
        self.poll_interval = poll_interval
        self.ingest_options = ingest_options
        self.running: dict[int, tuple[TenantConfig, asyncio.Task[None]]] = {}

    async def run(self) -> None:
        try:
            while True:
                await self.reconcile()
                await asyncio.sleep(self.poll_interval)
        finally:
            await self.stop_all()

    async def reconcile(self) -> None:
        wanted = {config.tenant_id: config for config in await sync_to_async(_enabled_configs)()}
        for tenant_id, (config, task) in list(self.running.items()):
            if wanted.get(tenant_id) != config or task.done():
                await self._stop(tenant_id)
        for tenant_id, config in wanted.items():
            if tenant_id not in self.running:
                ingest = TenantIngest(config, **self.ingest_options)
                task = asyncio.create_task(ingest.run(), name=f"ingest-{config.account}")
                task.add_done_callback(_log_crash)
                self.running[tenant_id] = (config, task)
                logger.info("%s: streaming from %s", config.account, config.base_url)
        await sync_to_async(_mark_disabled)()

    async def _stop(self, tenant_id: int) -> None:
        config, task = self.running.pop(tenant_id)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        logger.info("%s: stream stopped", config.account)

    async def stop_all(self) -> None:
        for tenant_id in list(self.running):
            await self._stop(tenant_id)


def _enabled_configs() -> list[TenantConfig]:
    return [TenantConfig.of(tenant) for tenant in Tenant.objects.filter(enabled=True)]


def _mark_disabled() -> None:
    for tenant_id in (
        Tenant.objects.filter(enabled=False)
        .exclude(connection_status=ConnectionStatus.DISABLED)
        .values_list("pk", flat=True)
    ):
        store.set_status(tenant_id, ConnectionStatus.DISABLED)


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("%s crashed", task.get_name(), exc_info=task.exception())
