"""The ingest worker against the running simulator: what the PBX says ends up stored and pushed."""

import asyncio
import json
from collections.abc import AsyncIterator, Callable

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from ctiboard.ingest.stream import TenantConfig, TenantIngest
from ctiboard.ingest.supervisor import Supervisor
from ctiboard.live.groups import tenant_group
from ctiboard.tenancy.models import ConnectionStatus, Extension, Tenant
from tests.conftest import Company, Pbx

pytestmark = pytest.mark.django_db(transaction=True)


def stored(company: Company) -> dict[str, tuple[str, str]]:
    return {
        e.number: (e.line, e.presence)
        for e in Extension.objects.filter(tenant=company.tenant, active=True)
    }


async def eventually(check: Callable[[], object], timeout: float = 10.0) -> None:
    """Wait until ``check`` (run in a thread: it may query the database) returns truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await sync_to_async(check)():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached within {timeout}s: {check.__doc__ or check}")
        await asyncio.sleep(0.05)


async def running(company: Company, **options: float) -> AsyncIterator[TenantIngest]:
    tenant = await Tenant.objects.aget(pk=company.tenant.pk)
    ingest = TenantIngest(TenantConfig.of(tenant), **options)
    task = asyncio.create_task(ingest.run())
    try:
        yield ingest
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_state_change_reaches_database_and_channel_layer(
    pbx: Pbx, pbx_company: Company
) -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(tenant_group(pbx_company.tenant.pk), channel)
    async for _ in running(pbx_company):
        await eventually(lambda: stored(pbx_company) == pbx.truth())
        while True:  # drain the bootstrap's messages
            try:
                await asyncio.wait_for(layer.receive(channel), 0.3)
            except TimeoutError:
                break

        number = pbx_company.extensions[2].number
        await asyncio.to_thread(
            pbx.control.set_state, pbx.account, number, line="ringing", presence="dnd"
        )
        message = await asyncio.wait_for(layer.receive(channel), 5)
        assert message["type"] == "extensions.changed"
        [payload] = json.loads(message["tiles"])
        assert (payload["number"], payload["line"], payload["presence"]) == (
            number,
            "ringing",
            "dnd",
        )
        extension = await Extension.objects.aget(tenant=pbx_company.tenant, number=number)
        assert (extension.line, extension.presence) == ("ringing", "dnd")
        assert extension.seq == payload["seq"] > 0
        tenant = await Tenant.objects.aget(pk=pbx_company.tenant.pk)
        assert tenant.event_seq == extension.seq
        assert tenant.connection_status == ConnectionStatus.CONNECTED


async def test_undocumented_values_are_stored_raw(pbx: Pbx, pbx_company: Company) -> None:
    number = pbx_company.extensions[1].number
    async for _ in running(pbx_company):
        await eventually(lambda: stored(pbx_company) == pbx.truth())
        await asyncio.to_thread(pbx.control.set_state, pbx.account, number, line="busy")
        await eventually(lambda: stored(pbx_company)[number][0] == "busy")


async def test_reconnects_after_a_dropped_stream_and_catches_up(
    pbx: Pbx, pbx_company: Company
) -> None:
    number = pbx_company.extensions[0].number
    async for _ in running(pbx_company):
        await eventually(lambda: stored(pbx_company) == pbx.truth())
        await asyncio.to_thread(pbx.control.inject_fault, pbx.account, "drop")
        # Changed while the worker is away: the bootstrap of the next stream brings it.
        await asyncio.to_thread(pbx.control.set_state, pbx.account, number, line="in-use")
        await eventually(lambda: stored(pbx_company) == pbx.truth())


async def test_bad_credentials_mark_the_tenant_misconfigured(
    pbx: Pbx, pbx_company: Company
) -> None:
    await Tenant.objects.filter(pk=pbx_company.tenant.pk).aupdate()
    tenant = await Tenant.objects.aget(pk=pbx_company.tenant.pk)
    tenant.api_password = "wrong"
    await tenant.asave()
    async for _ in running(pbx_company):

        def misconfigured() -> bool:
            """the tenant is reported misconfigured"""
            status = Tenant.objects.get(pk=tenant.pk).connection_status
            return status == ConnectionStatus.MISCONFIGURED

        await eventually(misconfigured)
        logins_before = pbx.control.counters(pbx.account)["requests"]
        await asyncio.sleep(1.0)
        # Backing off: no tight login loop against a PBX that refuses us.
        assert pbx.control.counters(pbx.account)["requests"] - logins_before <= 1


async def test_supervisor_follows_tenants_enabled_and_disabled(
    pbx: Pbx, pbx_company: Company
) -> None:
    supervisor = Supervisor(poll_interval=0.1)
    task = asyncio.create_task(supervisor.run())
    try:
        await eventually(lambda: stored(pbx_company) == pbx.truth())
        await Tenant.objects.filter(pk=pbx_company.tenant.pk).aupdate(enabled=False)

        def disabled() -> bool:
            """the tenant's stream is stopped and reported disabled"""
            tenant = Tenant.objects.get(pk=pbx_company.tenant.pk)
            return tenant.connection_status == ConnectionStatus.DISABLED

        await eventually(disabled)
        assert pbx_company.tenant.pk not in supervisor.running
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
