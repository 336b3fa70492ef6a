"""The worker's writer and status: bootstrap replacement, status times, finishing on stop."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone

from ctiboard.cti.client import AuthenticationFailed, CTIError
from ctiboard.cti.events import parse_state
from ctiboard.ingest import writer
from ctiboard.ingest.stream import TenantConfig, TenantIngest, _Opened, _Retry
from ctiboard.live.groups import tenant_group
from ctiboard.tenancy.models import ConnectionStatus, Extension, Tenant
from tests.conftest import Company, Pbx
from tests.ingest.support import converged, eventually, running

pytestmark = pytest.mark.django_db(transaction=True)


def lines(company: Company) -> dict[str, str]:
    return dict(Extension.objects.filter(tenant=company.tenant).values_list("number", "line"))


async def test_each_bootstrap_replaces_the_stored_state(company: Company) -> None:
    tenant = await Tenant.objects.aget(pk=company.tenant.pk)
    ingest = TenantIngest(TenantConfig.of(tenant), bootstrap_window=0.2)
    ingest.state = await sync_to_async(writer.load_state)(tenant.pk)
    write_task = asyncio.create_task(ingest._write())
    try:
        # 100..105 are stored idle; the bootstrap mentions only 100 and 101.
        ingest.queue.put_nowait(_Opened("states"))
        ingest.queue.put_nowait(parse_state({"extension": "100", "line": "in-use"}))
        ingest.queue.put_nowait(parse_state({"extension": "101", "line": "idle"}))
        expected = {"100": "in-use", "101": "idle"} | {str(n): "unknown" for n in range(102, 106)}
        await eventually(lambda: lines(company) == expected)
        # The next bootstrap is complete: everything is known again, nothing is left over.
        ingest.queue.put_nowait(_Opened("states"))
        for number in range(100, 106):
            ingest.queue.put_nowait(parse_state({"extension": str(number), "line": "idle"}))
        await eventually(lambda: set(lines(company).values()) == {"idle"})
        await asyncio.sleep(0.3)  # past the window: a complete bootstrap marks nothing
        assert set((await sync_to_async(lines)(company)).values()) == {"idle"}
        seqs = await sync_to_async(
            lambda: list(
                Extension.objects.filter(tenant=company.tenant).values_list("seq", flat=True)
            )
        )()
        tenant = await Tenant.objects.aget(pk=company.tenant.pk)
        assert max(seqs) == tenant.event_seq and len(set(seqs)) == len(seqs)
    finally:
        write_task.cancel()
        await asyncio.gather(write_task, return_exceptions=True)


@pytest.mark.django_db(transaction=False)  # so the pushes (on commit) can be captured
def test_reconnecting_keeps_its_first_time_and_pushes_once(
    company: Company, django_capture_on_commit_callbacks: object
) -> None:
    tenant_id = company.tenant.pk
    with django_capture_on_commit_callbacks() as pushes:  # type: ignore[operator]
        writer.set_status(tenant_id, ConnectionStatus.RECONNECTING, "state stream: stalled")
        since = Tenant.objects.get(pk=tenant_id).status_since
        writer.set_status(tenant_id, ConnectionStatus.RECONNECTING, "state stream: HTTP 503")
        writer.set_status(tenant_id, ConnectionStatus.RECONNECTING, "state stream: HTTP 503")
    tenant = Tenant.objects.get(pk=tenant_id)
    assert (tenant.status_since, tenant.status_detail) == (since, "state stream: HTTP 503")
    assert len(pushes) == 1
    with django_capture_on_commit_callbacks() as pushes:  # type: ignore[operator]
        writer.set_status(tenant_id, ConnectionStatus.CONNECTED)
    tenant = Tenant.objects.get(pk=tenant_id)
    assert tenant.status_since is not None and since is not None
    assert (tenant.connection_status, tenant.status_detail) == (ConnectionStatus.CONNECTED, "")
    assert tenant.status_since >= since and len(pushes) == 1


async def test_stopping_finishes_the_queued_writes(pbx: Pbx, pbx_company: Company) -> None:
    number = pbx_company.extensions[0].number
    async with running(pbx_company) as ingest:
        await converged(pbx, pbx_company)
        for index in range(300):
            ingest.queue.put_nowait(parse_state({"extension": number, "line": f"x{index}"}))
        # Leaving the block cancels the worker at once, with all of these still queued.
    extension = await Extension.objects.aget(tenant=pbx_company.tenant, number=number)
    tenant = await Tenant.objects.aget(pk=pbx_company.tenant.pk)
    assert extension.line == "x299"
    assert (tenant.connection_status, tenant.status_detail) == (
        ConnectionStatus.RECONNECTING,
        "the ingest worker stopped",
    )
    assert tenant.status_since is not None and tenant.status_since <= timezone.now()


def test_refusals_count_as_misconfigured_only_when_they_persist() -> None:
    retry = _Retry()
    refused = CTIError("access token refused twice", status=401)
    assert retry.failed(refused)[0] == ConnectionStatus.RECONNECTING
    assert retry.failed(refused)[0] == ConnectionStatus.RECONNECTING
    status, delay = retry.failed(refused)
    assert status == ConnectionStatus.MISCONFIGURED and 1 <= delay <= 60
    retry.reset()
    assert retry.failed(refused)[0] == ConnectionStatus.RECONNECTING
    assert retry.failed(AuthenticationFailed("login refused"))[0] == (
        ConnectionStatus.MISCONFIGURED
    )
    status, delay = _Retry().failed(CTIError("busy", status=503, retry_after=2.0))
    assert status == ConnectionStatus.RECONNECTING and delay >= 2.0


async def test_a_burst_is_stored_and_pushed_as_one_batch(company: Company) -> None:
    """The first event after a quiet spell goes out at once; what follows within the batch
    interval is gathered into one transaction and one message to the boards."""
    tenant = await Tenant.objects.aget(pk=company.tenant.pk)
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(tenant_group(tenant.pk), channel)
    ingest = TenantIngest(TenantConfig.of(tenant), batch_interval=0.5)
    ingest.state = await sync_to_async(writer.load_state)(tenant.pk)
    write_task = asyncio.create_task(ingest._write())
    try:
        ingest.queue.put_nowait(parse_state({"extension": "100", "line": "ringing"}))
        first = await asyncio.wait_for(layer.receive(channel), 5)
        for number in ("101", "102", "103"):
            ingest.queue.put_nowait(parse_state({"extension": number, "line": "in-use"}))
            await asyncio.sleep(0.05)
        second = await asyncio.wait_for(layer.receive(channel), 5)
        numbers = [[p["number"] for p in json.loads(m["tiles"])] for m in (first, second)]
        assert numbers == [["100"], ["101", "102", "103"]]
    finally:
        write_task.cancel()
        await asyncio.gather(write_task, return_exceptions=True)
        await layer.group_discard(tenant_group(tenant.pk), channel)
