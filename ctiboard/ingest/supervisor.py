"""The ingest worker: a TenantIngest for each enabled tenant whose lease this worker holds."""

import asyncio
import functools
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connections

from ctiboard.lib.metrics import LEASES_HELD, LIVE_WORKERS, forget_tenant
from ctiboard.lib.outage import Outage
from ctiboard.tenancy.models import ConnectionStatus, Tenant

from . import coverage, identity, writer
from .database import database_unavailable, fresh_connections, in_database_thread
from .health import HEALTH, WorkerHealth
from .leases import DEAD_AFTER_INTERVALS, IdentityLost, Leases, fair_share
from .outage import DatabaseReach
from .stream import TenantConfig, TenantIngest

# The most a planned stop's drain takes (TenantIngest's drain_timeout).
STOP_DRAIN_BOUND = 10.0

logger = logging.getLogger(__name__)

_R = TypeVar("_R")


class Supervisor:
    """Runs a TenantIngest for each enabled tenant whose lease this worker holds.

    Any number of workers may run: each round (every ``heartbeat_interval``, 1 s) a worker
    heartbeats, renews its leases, sheds tenants beyond its fair share, takes free ones up to
    it, marks tenants nobody serves as ``unserved``, and follows tenants added, changed or
    disabled in the admin (re-read every ``poll_interval``). A tenant whose lease is not renewed
    in time is stopped by a timer, before any other worker may take it over.
    """

    def __init__(
        self,
        poll_interval: float = 5.0,
        *,
        lease_ttl: float | None = None,
        worker_id: str | None = None,
        heartbeat_interval: float = 1.0,
        health: WorkerHealth = HEALTH,
        **ingest_options: float,
    ) -> None:
        self.poll_interval = poll_interval
        self.heartbeat_interval = heartbeat_interval
        # Lease rounds that fail while the database is away: one warning, then a summary.
        self._database_outage = Outage(logger, "the database (lease rounds)")
        # What the rounds say of the database, for every tenant's pulse and writer.
        self.database = DatabaseReach()
        self.ingest_options = ingest_options
        self.identity = (
            identity.Identity(worker_id, explicit=True) if worker_id else identity.configured()
        )
        self.health = health
        self.health.dead_after = DEAD_AFTER_INTERVALS * heartbeat_interval
        self._lease_ttl = lease_ttl or settings.CTIBOARD_LEASE_TTL
        self.leases = self._leases_for(self.identity.worker_id)
        self._tenants_read: tuple[float, list[TenantConfig], set[int]] | None = None
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
        return min(self.poll_interval, self.leases.ttl / 3, self.heartbeat_interval)

    def _leases_for(self, worker_id: str) -> Leases:
        return Leases(worker_id, self._lease_ttl, dead_after=self.health.dead_after)

    async def claim(self) -> None:
        """Become the identity's one live process (raises identity.IdentityClash)."""
        # Long enough for a dead predecessor's heartbeat to go stale, not for a live one's.
        wait = self.health.dead_after + self.heartbeat_interval
        try:
            self.leases = await self._leasing(
                functools.partial(identity.claim, wait=wait), self.identity, self._leases_for
            )
        except BaseException:
            if self._lease_thread is not None:
                self._lease_thread.shutdown(wait=False)
            raise

    async def run(self) -> None:
        await self.claim()
        logger.info("ingest worker %s (lease ttl %.1fs)", self.worker_id, self.leases.ttl)
        try:
            while True:
                try:
                    await self.reconcile()
                except IdentityLost:
                    logger.error("worker id %s taken by another process; stopping", self.worker_id)
                    for tenant_id in list(self.running):
                        await self._stop(tenant_id, drain=False)
                    raise
                except Exception as exc:
                    # Database away: the expiry timers stop every stream whose lease runs out.
                    if database_unavailable(exc):
                        self.database.failed()
                    else:
                        logger.exception("lease round failed; retrying in %.1fs", self.interval)
                    self._database_outage.failed(exc)
                else:
                    self.database.reached()
                    self._database_outage.recovered()
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
                account = self.running[tenant_id][0].account
                await self._stop(tenant_id, drain=tenant_id not in plan.lost)
                forget_tenant(account)  # another worker's series now
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
                ingest = TenantIngest(config, database=self.database, **self.ingest_options)
                self._ingests[tenant_id] = ingest
                task = asyncio.create_task(ingest.run(), name=f"ingest-{config.account}")
                task.add_done_callback(_log_crash)
                self.running[tenant_id] = (config, task)
                logger.info("%s: streaming from %s", config.account, config.base_url)
            self._arm(tenant_id, valid_until)
        LEASES_HELD.set(len(self.running))
        # In the event loop's thread: the status push must reach the demo's in-memory layer.
        await sync_to_async(_mark_disabled)(plan.disabled)
        if plan.unserved:
            marked = await in_database_thread(coverage.mark_unserved, plan.unserved)
            for tenant_id in marked:
                logger.warning("tenant %s: no live worker streams it", tenant_id)
        for tenant_id in plan.marked_unserved & self.running.keys():
            await self._restore_status(tenant_id)

    async def _leasing(self, function: Callable[..., _R], *args: object) -> _R:
        if self._lease_thread is None:
            return await in_database_thread(function, *args)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._lease_thread, function, *args)

    def _plan(self, running: set[int]) -> "_Plan":
        """One lease round, in the lease thread: heartbeat, renew, shed, take."""
        close_old_connections()
        enabled, disabled = self._tenants()
        configs = {config.tenant_id: config for config in enabled}
        live_workers = self.leases.heartbeat()
        self.health.heartbeat_at = time.monotonic()
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
        # What this round leaves unserved: the survivors mark it so, at once, for the boards.
        # (What this worker releases now is handing over, and not counted.)
        unserved = coverage.coverage(configs.keys() - release).unserved - held
        return _Plan(
            held={tenant_id: configs[tenant_id] for tenant_id in held},
            release=release,
            disabled=disabled,
            lost=lost,
            unserved=unserved,
            marked_unserved=coverage.marked_unserved(held),
        )

    def _tenants(self) -> tuple[list[TenantConfig], set[int]]:
        """The tenants, re-read every ``poll_interval`` (rounds run every second)."""
        now = time.monotonic()
        if self._tenants_read is None or now - self._tenants_read[0] >= self.poll_interval:
            self._tenants_read = (now, *_tenants())
        return self._tenants_read[1], self._tenants_read[2]

    async def _restore_status(self, tenant_id: int) -> None:
        """A tenant this worker streams was marked unserved by a peer that had not seen the
        takeover yet: put back what the streams say (once both have said something)."""
        links = self._ingests[tenant_id].links
        known = [link for link in links.values() if link is not None]
        if len(known) < len(links):
            return  # the stream writes its first status itself
        problems = [detail for status, detail in known if status != ConnectionStatus.CONNECTED]
        if not problems:
            status = ConnectionStatus.CONNECTED
        elif any(status == ConnectionStatus.MISCONFIGURED for status, _ in known):
            status = ConnectionStatus.MISCONFIGURED
        else:
            status = ConnectionStatus.RECONNECTING
        await in_database_thread(
            writer.set_status,
            tenant_id,
            status,
            "; ".join(problems),
            if_status=ConnectionStatus.UNSERVED,
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
            forget_tenant(config.account)
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
        try:
            # A planned stop: readiness keeps counting this worker while its streams wind down,
            # which may take a tenant's whole drain (its queued events stored) on a busy host.
            grace = coverage.HANDOVER_GRACE.total_seconds() + STOP_DRAIN_BOUND
            await self._leasing(self.leases.announce_stop, grace)
        except Exception:
            logger.exception("could not announce the stop")
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
    unserved: set[int]
    marked_unserved: set[int]


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
    # The event loop's own thread keeps its connection for good: one the server ended (an
    # outage, a failover) failed every round after, and the rounds never recovered.
    fresh_connections()
    for tenant_id in (
        Tenant.objects.filter(pk__in=tenant_ids, enabled=False)
        .exclude(connection_status=ConnectionStatus.DISABLED)
        .values_list("pk", flat=True)
    ):
        writer.set_status(tenant_id, ConnectionStatus.DISABLED)


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("%s crashed", task.get_name(), exc_info=task.exception())
