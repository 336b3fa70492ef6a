"""The worker's pulse: every second, per tenant it streams, what is committed and the PBX
status, so boards notice a silent worker and repair what a lost message cost them."""

import asyncio
from typing import Any

import pytest
from channels.layers import get_channel_layer

from ctiboard.live.groups import tenant_group
from ctiboard.tenancy.models import ConnectionStatus, Tenant
from tests.conftest import Company, Pbx
from tests.ingest.support import control, converged, running

pytestmark = pytest.mark.django_db(transaction=True)


async def _pulses(channel: str, count: int) -> list[dict[str, Any]]:
    layer = get_channel_layer()
    pulses: list[dict[str, Any]] = []
    while len(pulses) < count:
        message = await asyncio.wait_for(layer.receive(channel), 5)
        if message["type"] == "tenant.pulse":
            pulses.append(message)
    return pulses


async def test_the_worker_pulses_what_it_committed_and_the_pbx_status(
    pbx: Pbx, pbx_company: Company
) -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(tenant_group(pbx_company.tenant.pk), channel)
    async with running(pbx_company):
        await converged(pbx, pbx_company)
        number = pbx_company.extensions[2].number
        await control(pbx.control.set_state, pbx.account, number, presence="dnd")
        await converged(pbx, pbx_company)
        tenant = await Tenant.objects.aget(pk=pbx_company.tenant.pk)

        first, second = await _pulses(channel, 2)

    assert first["tenant_id"] == second["tenant_id"] == pbx_company.tenant.pk
    assert second["seq"] == tenant.event_seq
    assert second["status"]["connection_status"] == ConnectionStatus.CONNECTED
    # About a second apart (what web processes time out on, three times that).
    assert 0.5 <= second["sent_at"] - first["sent_at"] <= 2.5
