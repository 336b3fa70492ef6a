"""The ingest worker: a TenantIngest for each enabled tenant whose lease this worker holds."""

import asyncio
import logging
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connections

from ctiboard.lib.metrics import LEASES_HELD, LIVE_WORKERS
from ctiboard.tenancy.models import ConnectionStatus, Tenant

from . import writer
from .database import in_database_thread
from .leases import Leases, fair_share, new_worker_id
from .stream import TenantConfig, TenantIngest

logger = logging.getLogger(__name__)

_R = TypeVar("_R")


class Supervisor:
    """Runs a TenantIngest for each enabled tenant whose lease this worker holds.

    Any number of workers may run: each round (every ``lease_ttl / 3`` at most) a worker
    heartbeats, renews its leases, sheds tenants beyond its fair share, takes free ones up to
    it, and follows tenants added, changed or disabled in the admin. A tenant whose lease is
    not renewed in time is stopped by a timer, before any other worker may take it over.
    """

    def __init__(
        self,
        poll_interval: float = 5.0,
        *,
        lease_ttl: float | None = None,
        worker_id: str | None = None,
        **ingest_options: float,
    ) -> None:
        self.poll_interval = poll_interval
        self.ingest_options = ingest_options
        self.leases = Leases(worker_id or new_worker_id(), lease_ttl or settings.CTIBOARD_LEASE_TTL)
        self.running: dict[int, tuple[TenantConfig, asyncio.Task[None]]] = {}
        self._expiry: dict[int, asyncio.TimerHandle] = {}
        self._ingests: dict[int, TenantIngest] = {}
        # Streams cancelled by an expired lease, still winding down: a tenant is not started
        # again in this process before its previous stream has ended.
        self._stopping: dict[int, asyncio.Task[None]] = {}
        # Lease rounds get a thread (and database connection) of their own: a slow batch of
        # state writes must not hold up the renewal of the very leases it depends on. Not on
        # SQLite (one worker, the demo): there a second writer only races the state writes
        # for the file lock, and its busy handler loses every race under load. In the writes'
        # thread a round waits for one batch at most.
        self._lease_thread = (
            None
            if connections["default"].vendor == "sqlite"
            else ThreadPoolExecutor(1, thread_name_prefix="ingest-leases")
        )

    @property
    def worker_id(self) -> str:
        return self.leases.worker_id

    @property
    def interval(self) -> float:
        return min(self.poll_interval, self.leases.ttl / 3)

    async def run(self) -> None:
        logger.info("ingest worker %s (lease ttl %.1fs)", self.worker_id, self.leases.ttl)
        try:
            while True:
                try:
                    await self.reconcile()
                except Exception:
                    # Database away: the expiry timers stop every stream whose lease runs out.
                    logger.exception("lease round failed; retrying in %.1fs", self.interval)
                await asyncio.sleep(self.interval)
        finally:
            await self.stop_all()

    async def reconcile(self) -> None:
        loop = asyncio.get_running_loop()
        # The database stamps every lease this round renews or takes with now() + ttl, and
        # its now() is later than this moment: until valid_until the leases are surely ours.
        sent = loop.time()
        plan = await self._leasing(self._plan, set(self.running))
        valid_until = sent + self.leases.ttl * (1 - LEASE_SAFETY_MARGIN)
        for tenant_id in list(self.running):
            if tenant_id not in plan.held:
                await self._stop(tenant_id, drain=tenant_id not in plan.lost)
        if plan.release:
            await self._leasing(self.leases.release, plan.release)
        if loop.time() >= valid_until:
            logger.warning("lease round took longer than the lease is surely valid; stopping")
            for tenant_id in list(self.running):
                await self._stop(tenant_id, drain=False)
            return
        for tenant_id, config in plan.held.items():
            if tenant_id in self.running:
                running_config, task = self.running[tenant_id]
                if running_config != config or task.done():
                    await self._stop(tenant_id)
            stopping = self._stopping.get(tenant_id)
            if stopping is not None and not stopping.done():
                continue  # the next round starts it, once the old stream has ended
            self._stopping.pop(tenant_id, None)
            if tenant_id not in self.running:
                ingest = TenantIngest(config, **self.ingest_options)
                self._ingests[tenant_id] = ingest
                task = asyncio.create_task(ingest.run(), name=f"ingest-{config.account}")
                task.add_done_callback(_log_crash)
                self.running[tenant_id] = (config, task)
                logger.info("%s: streaming from %s", config.account, config.base_url)
            self._arm(tenant_id, valid_until)
        LEASES_HELD.set(len(self.running))
        # In the event loop's thread: the status push must reach the demo's in-memory layer.
        await sync_to_async(_mark_disabled)(plan.disabled)

    async def _leasing(self, function: Callable[..., _R], *args: object) -> _R:
        if self._lease_thread is None:
            return await in_database_thread(function, *args)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._lease_thread, function, *args)

    def _plan(self, running: set[int]) -> "_Plan":
        """One lease round, in the lease thread: heartbeat, renew, shed, take."""
        close_old_connections()
        enabled, disabled = _tenants()
        configs = {config.tenant_id: config for config in enabled}
        live_workers = self.leases.heartbeat()
        LIVE_WORKERS.set(live_workers)
        held = self.leases.renew(running & configs.keys())
        lost = (running & configs.keys()) - held
        for tenant_id in lost:
            logger.warning("tenant %s: lease lost; stopping its stream", tenant_id)
        release = running - configs.keys()  # disabled or deleted
        share = fair_share(len(configs), live_workers)
        if len(held) > share:
            surplus = set(random.sample(sorted(held), len(held) - share))
            logger.info("handing over %d tenant(s) to other workers", len(surplus))
            held -= surplus
            release |= surplus
        else:
            free = self.leases.claimable(configs.keys() - held)
            random.shuffle(free)  # workers starting together should not all queue for one row
            for tenant_id in free:
                if len(held) >= share:
                    break
                if self.leases.acquire(tenant_id):
                    held.add(tenant_id)
        return _Plan(
            held={tenant_id: configs[tenant_id] for tenant_id in held},
            release=release,
            disabled=disabled,
            lost=lost,
        )

    def _arm(self, tenant_id: int, valid_until: float) -> None:
        previous = self._expiry.pop(tenant_id, None)
        if previous is not None:
            previous.cancel()
        loop = asyncio.get_running_loop()
        self._expiry[tenant_id] = loop.call_at(valid_until, self._lease_expired, tenant_id)

    def _lease_expired(self, tenant_id: int) -> None:
        """Not renewed in time: stop at once, before another worker may take the tenant."""
        self._expiry.pop(tenant_id, None)
        entry = self.running.pop(tenant_id, None)
        ingest = self._ingests.pop(tenant_id, None)
        if ingest is not None:
            ingest.drain_on_stop = False
        if entry is not None:
            config, task = entry
            task.cancel()
            self._stopping[tenant_id] = task
            logger.warning("%s: lease not renewed in time; stream stopped", config.account)
        LEASES_HELD.set(len(self.running))

    async def _stop(self, tenant_id: int, *, drain: bool = True) -> None:
        handle = self._expiry.pop(tenant_id, None)
        if handle is not None:
            handle.cancel()
        ingest = self._ingests.pop(tenant_id, None)
        if ingest is not None and not drain:
            ingest.drain_on_stop = False
        config, task = self.running.pop(tenant_id)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        logger.info("%s: stream stopped", config.account)
        LEASES_HELD.set(len(self.running))

    async def stop_all(self) -> None:
        for tenant_id in list(self.running):
            await self._stop(tenant_id)
        await asyncio.gather(*self._stopping.values(), return_exceptions=True)
        try:
            # Hand every tenant over at once instead of after the lease ttl.
            await self._leasing(self._retire)
        except Exception:
            logger.exception("could not release the leases; they expire by themselves")
        if self._lease_thread is not None:
            self._lease_thread.shutdown(wait=False)

    def _retire(self) -> None:
        close_old_connections()
        try:
            self.leases.retire()
        finally:
            if self._lease_thread is not None:
                connections.close_all()  # this thread's; it ends with the worker


# Streams stop this fraction of the lease ttl before the database could let another take over.
LEASE_SAFETY_MARGIN = 0.2


@dataclass(frozen=True)
class _Plan:
    held: dict[int, TenantConfig]
    release: set[int]
    disabled: set[int]
    lost: set[int]


def _tenants() -> tuple[list[TenantConfig], set[int]]:
    """One read: the enabled tenants' configurations and the ids of the disabled ones."""
    enabled, disabled = [], set()
    for tenant in Tenant.objects.all():
        if tenant.enabled:
            enabled.append(TenantConfig.of(tenant))
        else:
            disabled.add(tenant.pk)
    return enabled, disabled


def _mark_disabled(tenant_ids: set[int]) -> None:
    """Report tenants disabled in the round that stopped them (not ones disabled since)."""
    for tenant_id in (
        Tenant.objects.filter(pk__in=tenant_ids, enabled=False)
        .exclude(connection_status=ConnectionStatus.DISABLED)
        .values_list("pk", flat=True)
    ):
        writer.set_status(tenant_id, ConnectionStatus.DISABLED)


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("%s crashed", task.get_name(), exc_info=task.exception())
