"""Calls across gaps of the state stream, against the running simulator: a line stored before the
gap ends no call, and a phone that went offline has none.

Time is judged by the worker's own sweeps (how far back each one looked), never by a clock of the
test.
"""

import time
from collections.abc import Callable, Iterator

import pytest
from asgiref.sync import sync_to_async

from ctiboard.calls.models import CallRecord, CallState, EndedBy, Outcome
from ctiboard.ingest import writer
from ctiboard.tenancy.models import ConnectionStatus, Extension
from ctiboard.webhooks.models import Webhook, WebhookDelivery
from tests.conftest import Company, Pbx
from tests.ingest.support import (
    active_legs,
    call_log,
    control,
    converged,
    eventually,
    running,
    status,
)

pytestmark = pytest.mark.django_db(transaction=True)

REMOTE = "4930123456"
KEEPALIVE = 0.1
GRACE = 0.5
STATE_FAULT_ENDPOINT = "GET /extensions/phone/states"


@pytest.fixture
async def quick(pbx: Pbx) -> Pbx:
    await control(pbx.control.update_tenant, pbx.account, keepalive=KEEPALIVE)
    return pbx


@pytest.fixture
def sweeps(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """The moment (monotonic) back to which each of the worker's idle sweeps looked: a leg
    last heard of before it was quiet for the whole grace period."""
    looked_back: list[float] = []
    sweep = writer.sweep_calls

    def spied(state: writer.TenantState, grace: float) -> list[Extension]:
        looked_back.append(time.monotonic() - grace)
        return sweep(state, grace)

    monkeypatch.setattr(writer, "sweep_calls", spied)
    yield looked_back


def swept_past(looked_back: list[float], moment: float) -> Callable[[], bool]:
    def check() -> bool:
        """a sweep looked back past the moment: a leg quiet since then was up for ending"""
        return bool(looked_back) and max(looked_back) > moment

    return check


def extension(company: Company, number: str) -> Extension:
    return Extension.objects.get(tenant=company.tenant, number=number)


def in_call(company: Company, number: str) -> Callable[[], bool]:
    def check() -> bool:
        """the tile shows the answered call"""
        return extension(company, number).call_state == CallState.IN_CALL

    return check


@pytest.mark.parametrize(
    ("fault", "read_timeout"),
    [
        ("drop", 0.6),  # lost, and kept away by errors on reconnecting
        ("stall", 2.0),  # silent, noticed only after the read timeout (longer than the grace)
    ],
)
async def test_a_call_answered_while_the_state_stream_is_away_goes_on(
    quick: Pbx,
    pbx_company: Company,
    sweeps: list[float],
    fault: str,
    read_timeout: float,
    tracebacks: list[object],
) -> None:
    pbx = quick
    target = pbx_company.extensions[2].number
    await Webhook.objects.acreate(
        tenant=pbx_company.tenant, name="CRM", url="https://crm.example/", secret="s"
    )
    async with (
        running(pbx_company, read_timeout=read_timeout, call_grace=GRACE),
        call_log(pbx) as log,
    ):
        await converged(pbx, pbx_company)  # the target's line is stored idle
        if fault == "drop":
            await control(
                pbx.control.inject_fault,
                pbx.account,
                "http_error",
                status=503,
                endpoint=STATE_FAULT_ENDPOINT,
                count=1000,
            )

        def reconnecting() -> bool:
            """the tenant is reported reconnecting"""
            return status(pbx_company) == ConnectionStatus.RECONNECTING

        result = await control(pbx.control.inject_fault, pbx.account, fault, stream="states")
        assert result["streams"] == 1
        if fault == "drop":
            await eventually(reconnecting)
        uuid = (await control(pbx.control.ring, pbx.account, REMOTE, target))["uuid"]
        await control(pbx.control.answer, pbx.account, uuid)
        await eventually(in_call(pbx_company, target))
        answered = time.monotonic()
        await eventually(swept_past(sweeps, answered))
        # The stored line said idle all along (stale): the call goes on regardless.
        assert (uuid, target) in await sync_to_async(active_legs)(pbx_company)
        assert await sync_to_async(in_call(pbx_company, target))()
        await control(pbx.control.clear_faults, pbx.account)
        await converged(pbx, pbx_company)  # back: the line is in use
        await control(pbx.control.hangup, pbx.account, uuid)
        await eventually(lambda: CallRecord.objects.filter(uuid=uuid).exists())

    def check() -> None:
        [answer] = [e for e in log if (e.uuid, e.extension, e.state) == (uuid, target, "answer")]
        [hangup] = [e for e in log if (e.uuid, e.extension, e.state) == (uuid, target, "hangup")]
        assert answer.updated is not None and hangup.updated is not None
        record = CallRecord.objects.get(uuid=uuid, extension__number=target)
        assert (record.outcome, record.ended_by) == (Outcome.ANSWERED, EndedBy.HANGUP)
        assert (record.answered_at, record.ended_at) == (answer.updated, hangup.updated)
        ended = WebhookDelivery.objects.filter(uuid=uuid, event="ended")
        assert list(ended.values_list("revision", flat=True)) == [0]  # nothing to correct

    await sync_to_async(check)()


async def test_a_leg_whose_hangup_fell_into_a_gap_ends_when_its_phone_is_offline(
    quick: Pbx, pbx_company: Company, tracebacks: list[object]
) -> None:
    pbx = quick
    target = pbx_company.extensions[4].number
    async with running(pbx_company, read_timeout=0.6, call_grace=GRACE):
        uuid = (await control(pbx.control.ring, pbx.account, REMOTE, target))["uuid"]
        await control(pbx.control.answer, pbx.account, uuid)
        await eventually(in_call(pbx_company, target))
        # Both streams go and stay away; the hangup and the idle line fall into the gap, and
        # the phone goes offline before they are back.
        for endpoint in (STATE_FAULT_ENDPOINT, "GET /extensions/phone/calls"):
            await control(
                pbx.control.inject_fault,
                pbx.account,
                "http_error",
                status=503,
                endpoint=endpoint,
                count=1000,
            )
        await control(pbx.control.inject_fault, pbx.account, "drop")

        def reconnecting() -> bool:
            """the tenant is reported reconnecting"""
            return status(pbx_company) == ConnectionStatus.RECONNECTING

        await eventually(reconnecting)
        await control(pbx.control.hangup, pbx.account, uuid)
        await control(pbx.control.set_state, pbx.account, target, line="offline")
        await control(pbx.control.clear_faults, pbx.account)
        await converged(pbx, pbx_company)  # the bootstrap says offline

        def over() -> bool:
            """the leg is gone and the tile shows no call"""
            return (uuid, target) not in active_legs(pbx_company) and (
                extension(pbx_company, target).call_state == ""
            )

        await eventually(over)

    record = await CallRecord.objects.aget(uuid=uuid, extension__number=target)
    assert (record.outcome, record.ended_by) == (Outcome.ANSWERED, EndedBy.LINE_IDLE)
    assert record.talk_seconds is not None
