"""Tenant leases on the test database (SQLite here; PostgreSQL in tests/production).

Expiry is simulated by moving ``expires_at`` into the past, never by waiting for a clock.
"""

import asyncio
import logging
import subprocess
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ctiboard.ingest.database import in_database_thread as _db
from ctiboard.ingest.identity import Identity, IdentityClash, claim
from ctiboard.ingest.leases import IdentityLost, Leases, fair_share, live_holders
from ctiboard.ingest.supervisor import Supervisor
from ctiboard.tenancy.models import IngestLease, IngestWorker, Tenant
from tests.conftest import make_company

pytestmark = pytest.mark.django_db(transaction=True)


def expire_lease(tenant_id: int) -> None:
    IngestLease.objects.filter(pk=tenant_id).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )


def expire_worker(worker_id: str) -> None:
    IngestWorker.objects.filter(pk=worker_id).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )


def test_one_holder_at_a_time() -> None:
    tenant = make_company(count=1).tenant
    first, second = Leases("first", ttl=30), Leases("second", ttl=30)
    assert first.acquire(tenant.pk)
    assert not second.acquire(tenant.pk)
    assert first.acquire(tenant.pk), "taking a lease one holds already is a no-op success"
    assert second.claimable([tenant.pk]) == []
    assert IngestLease.objects.get(pk=tenant.pk).holder == "first"


def test_an_expired_lease_is_taken_over_and_the_old_holder_cannot_renew() -> None:
    tenant = make_company(count=1).tenant
    first, second = Leases("first", ttl=30), Leases("second", ttl=30)
    assert first.acquire(tenant.pk)
    assert first.renew([tenant.pk]) == {tenant.pk}
    expire_lease(tenant.pk)
    assert second.claimable([tenant.pk]) == [tenant.pk]
    assert first.renew([tenant.pk]) == set(), "an expired lease is lost, not renewed"
    assert second.acquire(tenant.pk)
    assert first.renew([tenant.pk]) == set()
    assert not first.acquire(tenant.pk)


def test_a_released_lease_is_free_at_once() -> None:
    one, two = make_company(count=1).tenant, make_company(count=1).tenant
    first, second = Leases("first", ttl=30), Leases("second", ttl=30)
    assert first.acquire(one.pk) and first.acquire(two.pk)
    first.release([one.pk])
    assert second.acquire(one.pk)
    assert not second.acquire(two.pk)
    first.retire()
    assert second.acquire(two.pk)


def test_heartbeats_count_live_workers_and_holders() -> None:
    tenant = make_company(count=1).tenant
    first, second = Leases("first", ttl=30), Leases("second", ttl=30)
    assert first.heartbeat() == 1
    assert second.heartbeat() == 2
    assert first.acquire(tenant.pk)
    assert live_holders([tenant.pk]) == {tenant.pk: "first"}
    expire_worker("first")
    assert second.heartbeat() == 1
    # The lease itself has not run out, but its holder is dead: not served.
    assert live_holders([tenant.pk]) == {}
    second.retire()
    assert not IngestWorker.objects.filter(pk="second").exists()


@pytest.mark.parametrize(
    ("tenants", "workers", "share"), [(0, 1, 0), (4, 2, 2), (5, 2, 3), (3, 0, 3), (1, 3, 1)]
)
def test_fair_share_covers_every_tenant(tenants: int, workers: int, share: int) -> None:
    assert fair_share(tenants, workers) == share
    assert share * max(1, workers) >= tenants


async def eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached within {timeout}s: {check.__doc__}")
        await asyncio.sleep(0.05)


async def test_two_supervisors_split_the_tenants_and_hand_over_on_stop() -> None:
    # Unreachable PBXs: the streams keep retrying, which is all the leases care about.
    tenants = [await sync_to_async(make_company)(count=1) for _ in range(4)]
    ids = {company.tenant.pk for company in tenants}
    first = Supervisor(poll_interval=0.1, lease_ttl=3, worker_id="first")
    second = Supervisor(poll_interval=0.1, lease_ttl=3, worker_id="second")
    first_task = asyncio.create_task(first.run())
    second_task = asyncio.create_task(second.run())
    try:

        def split() -> bool:
            """each supervisor runs two tenants, none runs one of the other's"""
            return (
                len(first.running) == len(second.running) == 2
                and first.running.keys() | second.running.keys() == ids
            )

        await eventually(split)
        assert not first.running.keys() & second.running.keys()
        first_task.cancel()
        await asyncio.gather(first_task, return_exceptions=True)
        assert not first.running

        def taken_over() -> bool:
            """the remaining supervisor runs all four (released at once, no ttl wait)"""
            return second.running.keys() == ids

        await eventually(taken_over)
    finally:
        for task in (first_task, second_task):
            task.cancel()
        await asyncio.gather(first_task, second_task, return_exceptions=True)


async def test_streams_stop_when_leases_cannot_be_renewed() -> None:
    company = await sync_to_async(make_company)(count=1)
    supervisor = Supervisor(poll_interval=0.1, lease_ttl=1, worker_id="cut-off")
    task = asyncio.create_task(supervisor.run())
    try:

        def running() -> bool:
            """the tenant's stream runs"""
            return company.tenant.pk in supervisor.running

        await eventually(running)
        stream = supervisor.running[company.tenant.pk][1]

        def database_gone(running: set[int]) -> None:
            raise ConnectionError("database unreachable")

        supervisor._plan = database_gone  # type: ignore[method-assign,assignment]

        def stopped() -> bool:
            """the stream was stopped by its lease timer"""
            return not supervisor.running and stream.done()

        await eventually(stopped)
        # The lease in the database is still valid: the stream stopped before it ran out.
        lease = await IngestLease.objects.aget(pk=company.tenant.pk)
        assert lease.holder == "cut-off"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_busy_writer_does_not_cost_the_worker_its_lease_on_sqlite(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SQLite has one write lock: lease rounds queue behind the state writes instead of racing
    them (they used to lose every race under load and stop the stream)."""
    company = await sync_to_async(make_company)(count=1)
    supervisor = Supervisor(poll_interval=0.1, lease_ttl=1.5, worker_id="busy")
    task = asyncio.create_task(supervisor.run())

    def write_for_a_while() -> None:
        # What a batch of the worker's state writes does to the lock: a write transaction,
        # held a while.
        with transaction.atomic():
            Tenant.objects.filter(pk=company.tenant.pk).update(event_seq=F("event_seq") + 1)
            time.sleep(0.05)

    try:

        def running() -> bool:
            """the tenant's stream runs"""
            return company.tenant.pk in supervisor.running

        await eventually(running)
        stream = supervisor.running[company.tenant.pk][1]
        until = time.monotonic() + 4 * supervisor.leases.ttl
        while time.monotonic() < until:
            await _db(write_for_a_while)
        assert supervisor.running.get(company.tenant.pk, (None, None))[1] is stream
        lease_warnings = [
            r.getMessage()
            for r in caplog.records
            if r.levelno >= logging.WARNING and "lease" in r.getMessage()
        ]
        assert lease_warnings == []
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


# --- identities: a restarted worker resumes, a second live one is refused ------------------


def as_if_run_elsewhere(worker_id: str, *, pid: int = 1) -> None:
    IngestWorker.objects.filter(pk=worker_id).update(hostname="elsewhere", pid=pid)


def test_a_restarted_worker_adopts_the_leases_of_its_dead_predecessor() -> None:
    tenant = make_company(count=1).tenant
    before = Leases("host:app", ttl=30)
    before.heartbeat()
    assert before.acquire(tenant.pk)
    process = subprocess.Popen(["true"])  # noqa: S607 - a pid that is surely gone afterwards
    process.wait()
    IngestWorker.objects.filter(pk="host:app").update(pid=process.pid)

    after = claim(Identity("host:app", explicit=True), lambda wid: Leases(wid, ttl=30), wait=0)
    assert after.incarnation != before.incarnation
    assert after.renew([tenant.pk]) == {tenant.pk}, "resumed at once, no ttl to wait out"
    assert before.renew([tenant.pk]) == set(), "the old incarnation cannot renew"
    with pytest.raises(IdentityLost):
        before.heartbeat()


def test_a_predecessor_not_proven_dead_leaves_leases_that_must_expire() -> None:
    tenant = make_company(count=1).tenant
    before = Leases("shared", ttl=30)
    before.heartbeat()
    assert before.acquire(tenant.pk)
    as_if_run_elsewhere("shared")
    expire_worker("shared")  # its heartbeat is stale, but it may still stream until its timer

    after = claim(Identity("shared", explicit=True), lambda wid: Leases(wid, ttl=30), wait=0)
    assert after.claimable([tenant.pk]) == []
    assert not after.acquire(tenant.pk)
    assert before.renew([tenant.pk]) == set()
    expire_lease(tenant.pk)
    assert after.acquire(tenant.pk)


def test_a_live_identity_is_refused_when_explicit_and_suffixed_when_derived() -> None:
    running = Leases("host:app", ttl=30)
    running.heartbeat()
    as_if_run_elsewhere("host:app")

    with pytest.raises(IdentityClash, match="in use by a live ingest worker"):
        claim(Identity("host:app", explicit=True), lambda wid: Leases(wid, ttl=30), wait=0)
    derived = claim(Identity("host:app", explicit=False), lambda wid: Leases(wid, ttl=30), wait=0)
    assert derived.worker_id == "host:app#2"
    assert running.heartbeat() == 2, "the running worker keeps its identity"
    assert set(IngestWorker.objects.values_list("pk", flat=True)) == {"host:app", "host:app#2"}
