"""Every fault the simulator can inject: after recovery the stored state equals its truth, and
the call stream is followed again."""

import asyncio
import logging
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from ctiboard.calls.models import CallRecord, EndedBy, Outcome
from ctiboard.tenancy.models import ConnectionStatus, Extension, Tenant
from tests.conftest import Company, Pbx
from tests.ingest.support import (
    active_legs,
    control,
    converged,
    eventually,
    quiesced,
    running,
    status,
    truth_legs,
)

pytestmark = pytest.mark.django_db(transaction=True)

REMOTE = "4930123456"
# Short enough to notice a stall quickly; the simulator's keepalives keep quiet streams alive.
READ_TIMEOUT = 0.6
KEEPALIVE = 0.1


def opened(pbx: Pbx) -> int:
    return int(pbx.control.counters(pbx.account)["streams_opened"])


async def reopened(pbx: Pbx, before: int, streams: int) -> None:
    def done() -> bool:
        """the worker opened its streams again"""
        return opened(pbx) >= before + streams

    await eventually(done)


async def calls_still_followed(pbx: Pbx, company: Company, number: str) -> None:
    """A call after the fault is seen from its first event to its hangup."""

    def connected() -> bool:
        """the tenant is connected again"""
        return status(company) == ConnectionStatus.CONNECTED

    await eventually(connected)
    uuid = (await control(pbx.control.ring, pbx.account, REMOTE, number))["uuid"]
    await eventually(lambda: (uuid, number) in active_legs(company))
    await control(pbx.control.answer, pbx.account, uuid)
    await control(pbx.control.hangup, pbx.account, uuid)

    def recorded() -> bool:
        """the call is recorded as answered"""
        record = CallRecord.objects.filter(uuid=uuid).first()
        return record is not None and record.outcome == Outcome.ANSWERED

    await eventually(recorded)
    await converged(pbx, company)


@pytest.fixture
async def quick(pbx: Pbx) -> Pbx:
    await control(pbx.control.update_tenant, pbx.account, keepalive=KEEPALIVE)
    return pbx


def numbers(company: Company) -> list[str]:
    return [e.number for e in company.extensions]


@pytest.mark.parametrize("kind", ["drop", "truncate", "unauthorized"])
async def test_streams_closed_by_the_pbx(
    quick: Pbx, pbx_company: Company, kind: str, tracebacks: list[object]
) -> None:
    pbx = quick
    first, second = numbers(pbx_company)[:2]
    async with running(pbx_company, read_timeout=READ_TIMEOUT):
        await converged(pbx, pbx_company)
        before = opened(pbx)
        result = await control(pbx.control.inject_fault, pbx.account, kind)
        assert result["streams"] == 2
        # Changed while the worker is away: the next bootstrap brings it.
        await control(pbx.control.set_state, pbx.account, first, line="in-use", presence="dnd")
        await reopened(pbx, before, 2)
        await converged(pbx, pbx_company)
        await calls_still_followed(pbx, pbx_company, second)


@pytest.mark.parametrize(("status_code", "count"), [(500, 3), (503, 1)])
async def test_http_errors_on_reconnect(
    quick: Pbx, pbx_company: Company, status_code: int, count: int, tracebacks: list[object]
) -> None:
    pbx = quick
    first, second = numbers(pbx_company)[2:4]
    async with running(pbx_company, read_timeout=READ_TIMEOUT):
        await converged(pbx, pbx_company)
        for endpoint in ("GET /extensions/phone/states", "GET /extensions/phone/calls"):
            await control(
                pbx.control.inject_fault,
                pbx.account,
                "http_error",
                status=status_code,
                endpoint=endpoint,
                count=count,
            )
        await control(pbx.control.inject_fault, pbx.account, "drop")

        def reconnecting() -> bool:
            """the tenant is reported reconnecting"""
            return status(pbx_company) == ConnectionStatus.RECONNECTING

        await eventually(reconnecting)
        await control(pbx.control.set_state, pbx.account, first, presence="away")
        await converged(pbx, pbx_company)
        await calls_still_followed(pbx, pbx_company, second)
    assert pbx.control.faults(pbx.account)["http_errors"] == []  # every error was answered


async def test_extension_list_errors_do_not_stop_the_streams(
    quick: Pbx, pbx_company: Company, tracebacks: list[object]
) -> None:
    pbx = quick
    await control(
        pbx.control.inject_fault,
        pbx.account,
        "http_error",
        status=500,
        endpoint="/extensions/phone/data",
        count=1,
    )
    async with running(pbx_company, read_timeout=READ_TIMEOUT):
        await converged(pbx, pbx_company)


@pytest.mark.parametrize("seconds", [0.3, 1.0])  # shorter and longer than the read timeout
async def test_slow_answers(
    quick: Pbx, pbx_company: Company, seconds: float, tracebacks: list[object]
) -> None:
    pbx = quick
    first, second = numbers(pbx_company)[4:6]
    async with running(pbx_company, read_timeout=READ_TIMEOUT):
        await converged(pbx, pbx_company)
        before = opened(pbx)
        await control(pbx.control.inject_fault, pbx.account, "delay", seconds=seconds, count=2)
        await control(pbx.control.inject_fault, pbx.account, "drop")
        await control(pbx.control.set_state, pbx.account, first, line="offline")
        await reopened(pbx, before, 2)
        await converged(pbx, pbx_company)
        await calls_still_followed(pbx, pbx_company, second)


async def test_stalled_streams_are_noticed_and_reopened(
    quick: Pbx, pbx_company: Company, tracebacks: list[object]
) -> None:
    pbx = quick
    first, second = numbers(pbx_company)[6:8]
    async with running(pbx_company, read_timeout=READ_TIMEOUT):
        await converged(pbx, pbx_company)
        before = opened(pbx)
        assert (await control(pbx.control.inject_fault, pbx.account, "stall"))["streams"] == 2
        await control(pbx.control.set_state, pbx.account, first, presence="busy")
        await reopened(pbx, before, 2)  # silent for READ_TIMEOUT: given up and reopened
        await converged(pbx, pbx_company)
        await calls_still_followed(pbx, pbx_company, second)
        await control(pbx.control.clear_faults, pbx.account)


@pytest.mark.parametrize("variant", ["broken_json", "unknown_fields", "missing_fields"])
async def test_malformed_frames_are_skipped_without_reconnecting(
    quick: Pbx,
    pbx_company: Company,
    variant: str,
    caplog: pytest.LogCaptureFixture,
    tracebacks: list[object],
) -> None:
    pbx = quick
    # Not the first extension: the simulator's sample frames are about that one.
    first, second = numbers(pbx_company)[1:3]
    async with running(pbx_company, read_timeout=READ_TIMEOUT, call_grace=0.5):
        await converged(pbx, pbx_company)
        before = opened(pbx)
        await control(pbx.control.inject_fault, pbx.account, "malformed", variant=variant)
        await control(pbx.control.set_state, pbx.account, first, line="busy", presence="dnd")
        await converged(pbx, pbx_company)
        await calls_still_followed(pbx, pbx_company, second)
        assert opened(pbx) == before
        # unknown_fields is a well-formed `ring` of a call that never rings a phone: its line
        # stays idle, so it ends after the grace period.
        await eventually(lambda: active_legs(pbx_company) == truth_legs(pbx) == set())
    if variant != "unknown_fields":  # extra fields are simply ignored
        skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
        assert skipped and all(pbx.account in message for message in skipped)


async def test_a_hangup_lost_in_a_gap_ends_the_call_by_the_idle_line(
    quick: Pbx, pbx_company: Company, tracebacks: list[object]
) -> None:
    pbx = quick
    target = numbers(pbx_company)[3]
    async with running(pbx_company, read_timeout=READ_TIMEOUT):
        uuid = (await control(pbx.control.ring, pbx.account, REMOTE, target))["uuid"]
        await control(pbx.control.answer, pbx.account, uuid)

        def talking() -> bool:
            """the call is tracked as answered"""
            return Extension.objects.get(tenant=pbx_company.tenant, number=target).call_state == (
                "in-call"
            )

        await eventually(talking)
        # Both streams go and stay away for a while; the hangup falls into the gap.
        for endpoint in ("GET /extensions/phone/states", "GET /extensions/phone/calls"):
            await control(
                pbx.control.inject_fault,
                pbx.account,
                "http_error",
                status=503,
                endpoint=endpoint,
                count=1,
            )
        await control(pbx.control.inject_fault, pbx.account, "drop")
        await control(pbx.control.hangup, pbx.account, uuid)
        # The bootstrap says the line is idle: the dangling call ends without a timeout.
        await eventually(lambda: CallRecord.objects.filter(uuid=uuid).exists())
        await converged(pbx, pbx_company)

    def check() -> None:
        record = CallRecord.objects.get(uuid=uuid)
        assert (record.outcome, record.ended_by) == (Outcome.ANSWERED, EndedBy.LINE_IDLE)
        assert record.talk_seconds is not None
        extension = Extension.objects.get(tenant=pbx_company.tenant, number=target)
        assert (extension.call_state, extension.call_partner) == ("", "")
        assert active_legs(pbx_company) == set()

    await sync_to_async(check)()


async def test_oddities_and_traffic_end_in_the_truth(
    quick: Pbx, pbx_company: Company, tracebacks: list[object]
) -> None:
    pbx = quick
    await control(
        pbx.control.set_oddities,
        pbx.account,
        line_busy=True,
        bridge=True,
        late_dial=True,
        hunt_group=True,
    )
    async with running(pbx_company, read_timeout=READ_TIMEOUT):
        await control(pbx.control.set_traffic, pbx.account, rate=40.0)
        await asyncio.sleep(1.5)  # generated traffic: inbound (hunt groups), internal, out
        await control(pbx.control.pause_traffic, pbx.account)
        await quiesced(pbx, pbx_company)
    records = await CallRecord.objects.filter(tenant=pbx_company.tenant).acount()
    assert records > 0


async def test_streams_renew_ahead_of_token_expiry_without_losing_calls(
    quick: Pbx, pbx_company: Company, tracebacks: list[object]
) -> None:
    pbx = quick
    await control(pbx.control.update_tenant, pbx.account, token_ttl=1.5)
    target = numbers(pbx_company)[1]
    async with running(pbx_company, read_timeout=READ_TIMEOUT):
        since = (await Tenant.objects.aget(pk=pbx_company.tenant.pk)).status_since
        before = opened(pbx)
        uuids = []
        while opened(pbx) < before + 4:  # at least two renewals of each stream
            uuid = (await control(pbx.control.ring, pbx.account, REMOTE, target))["uuid"]
            await control(pbx.control.answer, pbx.account, uuid)
            await control(pbx.control.hangup, pbx.account, uuid)
            uuids.append(uuid)
        await eventually(lambda: CallRecord.objects.filter(uuid__in=uuids).count() == len(uuids))
        await converged(pbx, pbx_company)
        tenant = await Tenant.objects.aget(pk=pbx_company.tenant.pk)

    # Renewals are not reconnects: the board never saw the status change.
    assert (tenant.connection_status, tenant.status_since) == (ConnectionStatus.CONNECTED, since)
    outcomes = await sync_to_async(
        lambda: set(CallRecord.objects.filter(uuid__in=uuids).values_list("outcome", "ended_by"))
    )()
    assert outcomes == {(Outcome.ANSWERED, EndedBy.HANGUP)}  # no event fell into a gap


async def test_bad_credentials_mid_stream_mark_the_tenant_misconfigured(
    quick: Pbx, pbx_company: Company, tracebacks: list[object]
) -> None:
    pbx = quick
    await control(pbx.control.update_tenant, pbx.account, token_ttl=1.0, refresh_ttl=1.0)
    async with running(pbx_company, read_timeout=READ_TIMEOUT):
        # The password is changed at NFON: refresh and login are refused from now on.
        await sync_to_async(_change_password)(pbx)

        def misconfigured() -> bool:
            """the tenant is reported misconfigured"""
            return status(pbx_company) == ConnectionStatus.MISCONFIGURED

        await eventually(misconfigured)


def _change_password(pbx: Pbx) -> None:
    # The simulator has no credential change: a new tenant under the same account (and another
    # username, so the old tokens die with the old one) does it.
    tenant: dict[str, Any] = pbx.control.tenant(pbx.account)
    pbx.control.delete_tenant(pbx.account)
    pbx.control.create_tenant(
        pbx.account,
        f"{pbx.username}-new",
        "changed",
        extensions=tenant["extensions"],
        seed=3,
        keepalive=KEEPALIVE,
    )


async def test_resync_now_from_the_admin(
    quick: Pbx, pbx_company: Company, admin_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    pbx = quick
    caplog.set_level(logging.INFO)
    async with running(pbx_company, read_timeout=READ_TIMEOUT, sync_interval=3600):
        await converged(pbx, pbx_company)
        requests = pbx.control.counters(pbx.account)["requests"]
        response = await sync_to_async(admin_client.post)(
            "/admin/pbx/tenant/",
            {"action": "resync_extensions", "_selected_action": [pbx_company.tenant.pk]},
        )
        assert response.status_code == 302

        def fetched() -> bool:
            """the worker fetched the extension list again"""
            return pbx.control.counters(pbx.account)["requests"] > requests

        await eventually(fetched)
    assert any("on request" in r.getMessage() for r in caplog.records)
