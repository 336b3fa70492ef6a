"""Call correlation against scripted calls of the running simulator.

Durations are checked against the ``updated`` stamps of the simulator's own events, as a second
client receives them, never against a clock of the test.
"""

from datetime import datetime

import pytest
from asgiref.sync import sync_to_async

from ctiboard.calls.models import ActiveCall, CallRecord, CallState, EndedBy, Outcome
from ctiboard.cti.events import CallEvent
from ctiboard.tenancy.models import Extension
from tests.conftest import Company, Pbx
from tests.ingest.support import (
    active_legs,
    call_log,
    control,
    converged,
    eventually,
    running,
    truth_legs,
)

pytestmark = pytest.mark.django_db(transaction=True)

REMOTE = "4930123456"


def stamp(log: list[CallEvent], uuid: str, extension: str, state: str) -> datetime:
    [event] = [e for e in log if (e.uuid, e.extension, e.state) == (uuid, extension, state)]
    assert event.updated is not None
    return event.updated


def seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


def record(company: Company, uuid: str, number: str) -> CallRecord | None:
    return CallRecord.objects.filter(
        tenant=company.tenant, uuid=uuid, extension__number=number
    ).first()


def extension(company: Company, number: str) -> Extension:
    return Extension.objects.get(tenant=company.tenant, number=number)


def numbers(company: Company) -> list[str]:
    return [e.number for e in company.extensions]


async def test_inbound_call_rings_is_answered_and_hung_up(
    pbx: Pbx, pbx_company: Company, tracebacks: list[object]
) -> None:
    target = numbers(pbx_company)[0]
    async with running(pbx_company), call_log(pbx) as log:
        call = await control(pbx.control.ring, pbx.account, REMOTE, target)
        uuid = call["uuid"]

        def ringing() -> bool:
            """the tile shows the ringing call with its partner"""
            ext = extension(pbx_company, target)
            return (ext.call_state, ext.call_partner, ext.call_direction) == (
                CallState.RINGING,
                REMOTE,
                "inbound",
            )

        await eventually(ringing)
        await control(pbx.control.answer, pbx.account, uuid)

        def talking() -> bool:
            """the tile shows the answered call"""
            ext = extension(pbx_company, target)
            return ext.call_state == CallState.IN_CALL and ext.call_since is not None

        await eventually(talking)
        answered_at = stamp(log, uuid, target, "answer")
        assert (await sync_to_async(extension)(pbx_company, target)).call_since == answered_at
        await control(pbx.control.hangup, pbx.account, uuid)
        await eventually(lambda: record(pbx_company, uuid, target) is not None)
        await converged(pbx, pbx_company)
    await sync_to_async(check_answered)(pbx_company, log, uuid, target)


def check_answered(company: Company, log: list[CallEvent], uuid: str, target: str) -> None:
    answered_at = stamp(log, uuid, target, "answer")
    done = record(company, uuid, target)
    assert done is not None
    ring, hangup = stamp(log, uuid, target, "ring"), stamp(log, uuid, target, "hangup")
    assert (done.outcome, done.direction, done.partner, done.ended_by) == (
        Outcome.ANSWERED,
        "inbound",
        REMOTE,
        EndedBy.HANGUP,
    )
    assert (done.started_at, done.answered_at, done.ended_at) == (ring, answered_at, hangup)
    assert done.ring_seconds == pytest.approx(seconds(answered_at, ring), abs=1e-6)
    assert done.talk_seconds == pytest.approx(seconds(hangup, answered_at), abs=1e-6)
    ext = extension(company, target)
    assert (ext.call_state, ext.call_partner, ext.call_since) == ("", "", None)
    assert not ActiveCall.objects.filter(tenant=company.tenant).exists()


async def test_unanswered_inbound_calls_are_missed_and_rejected_ones_rejected(
    pbx: Pbx, pbx_company: Company, tracebacks: list[object]
) -> None:
    first, second = numbers(pbx_company)[:2]
    async with running(pbx_company), call_log(pbx) as log:
        missed = (await control(pbx.control.ring, pbx.account, REMOTE, first))["uuid"]
        rejected = (await control(pbx.control.ring, pbx.account, REMOTE, second))["uuid"]
        await eventually(lambda: extension(pbx_company, second).call_state == CallState.RINGING)
        await control(pbx.control.hangup, pbx.account, missed)  # the caller gave up
        await control(pbx.control.reject, pbx.account, rejected)
        await eventually(lambda: record(pbx_company, rejected, second) is not None)
        await eventually(lambda: record(pbx_company, missed, first) is not None)

    def check() -> None:
        check_missed(pbx_company, log, missed, first)
        done = record(pbx_company, rejected, second)
        assert done is not None
        ring, hangup = stamp(log, rejected, second, "ring"), stamp(log, rejected, second, "hangup")
        assert (done.outcome, done.error, done.answered_at) == (Outcome.REJECTED, "reject", None)
        assert done.ring_seconds == pytest.approx(seconds(hangup, ring), abs=1e-6)

    await sync_to_async(check)()


def check_missed(company: Company, log: list[CallEvent], uuid: str, number: str) -> None:
    done = record(company, uuid, number)
    assert done is not None
    ring, hangup = stamp(log, uuid, number, "ring"), stamp(log, uuid, number, "hangup")
    assert (done.outcome, done.answered_at, done.talk_seconds) == (Outcome.MISSED, None, None)
    assert done.ring_seconds == pytest.approx(seconds(hangup, ring), abs=1e-6)


async def test_internal_call_gives_both_legs_their_own_record(
    pbx: Pbx, pbx_company: Company, tracebacks: list[object]
) -> None:
    caller, callee = numbers(pbx_company)[2:4]
    async with running(pbx_company), call_log(pbx) as log:
        call = await control(pbx.control.ring, pbx.account, caller, callee)
        legs = {leg["extension"]: leg["uuid"] for leg in call["legs"]}
        assert legs[caller] != legs[callee]

        def both_shown() -> bool:
            """both tiles show the call, each from its own side"""
            a, b = extension(pbx_company, caller), extension(pbx_company, callee)
            return (a.call_partner, a.call_direction, b.call_partner, b.call_direction) == (
                callee,
                "outbound",
                caller,
                "inbound",
            )

        await eventually(both_shown)
        await control(pbx.control.answer, pbx.account, call["uuid"])
        await eventually(
            lambda: (
                extension(pbx_company, caller).call_state == CallState.IN_CALL
                and extension(pbx_company, callee).call_state == CallState.IN_CALL
            )
        )
        await control(pbx.control.hangup, pbx.account, call["uuid"])
        await eventually(lambda: all(record(pbx_company, legs[n], n) for n in (caller, callee)))

    def check() -> None:
        out, into = (
            record(pbx_company, legs[caller], caller),
            record(pbx_company, legs[callee], callee),
        )
        assert out is not None and into is not None
        assert (out.outcome, out.direction, out.partner) == (Outcome.ANSWERED, "outbound", callee)
        assert (into.outcome, into.direction, into.partner) == (Outcome.ANSWERED, "inbound", caller)
        assert out.started_at == stamp(log, legs[caller], caller, "dial")
        assert into.started_at == stamp(log, legs[callee], callee, "ring")
        for number, done in ((caller, out), (callee, into)):
            assert done.answered_at == stamp(log, legs[number], number, "answer")
            assert done.ended_at == stamp(log, legs[number], number, "hangup")

    await sync_to_async(check)()


async def test_hunt_group_shares_one_uuid_across_legs(
    pbx: Pbx, pbx_company: Company, tracebacks: list[object]
) -> None:
    group = numbers(pbx_company)[:3]
    async with running(pbx_company):
        uuid = (await control(pbx.control.ring, pbx.account, REMOTE, group))["uuid"]
        await eventually(lambda: active_legs(pbx_company) == {(uuid, number) for number in group})
        await control(pbx.control.answer, pbx.account, uuid, group[1])
        await eventually(lambda: active_legs(pbx_company) == {(uuid, group[1])})
        await control(pbx.control.hangup, pbx.account, uuid)
        await eventually(lambda: CallRecord.objects.filter(uuid=uuid).count() == 3)
        await converged(pbx, pbx_company)

    outcomes = await sync_to_async(
        lambda: {
            r.extension.number: r.outcome
            for r in CallRecord.objects.filter(uuid=uuid).select_related("extension")
        }
    )()
    assert outcomes == {
        group[0]: Outcome.ANSWERED_ELSEWHERE,
        group[1]: Outcome.ANSWERED,
        group[2]: Outcome.ANSWERED_ELSEWHERE,
    }


async def test_a_call_older_than_the_stream_ends_with_outcome_unknown(
    pbx: Pbx, pbx_company: Company, tracebacks: list[object]
) -> None:
    target = numbers(pbx_company)[4]
    # Answered before the worker connects: the stream sends no history.
    uuid = (await control(pbx.control.ring, pbx.account, REMOTE, target))["uuid"]
    await control(pbx.control.answer, pbx.account, uuid)
    async with running(pbx_company):
        await converged(pbx, pbx_company)
        await control(pbx.control.hangup, pbx.account, uuid)
        await eventually(lambda: record(pbx_company, uuid, target) is not None)
        await converged(pbx, pbx_company)

    done = await sync_to_async(record)(pbx_company, uuid, target)
    assert done is not None
    assert (done.outcome, done.ended_by, done.partner) == (Outcome.UNKNOWN, "hangup", REMOTE)
    assert (done.started_at, done.answered_at, done.ring_seconds, done.talk_seconds) == (
        None,
        None,
        None,
        None,
    )


async def test_click_to_dial_legs_with_bridge_and_late_dial_oddities(
    pbx: Pbx, pbx_company: Company, tracebacks: list[object]
) -> None:
    caller, callee = numbers(pbx_company)[5:7]
    await control(pbx.control.set_oddities, pbx.account, bridge=True, late_dial=True)
    for number in (caller, callee):
        await control(
            pbx.control.set_behaviour, pbx.account, number, answer_after=1.0, hangup_after=None
        )
    async with running(pbx_company), pbx.client() as client, call_log(pbx) as log:
        start = await client.originate(
            caller, callee, caller_context=pbx.account, callee_context=pbx.account
        )

        def answered() -> bool:
            """both legs are in the call"""
            return {extension(pbx_company, n).call_state for n in (caller, callee)} == {
                CallState.IN_CALL
            }

        await eventually(answered)
        [leg] = [e for e in log if e.extension == callee and e.state == "answer"]
        await control(pbx.control.hangup, pbx.account, start.uuid)
        await eventually(lambda: record(pbx_company, start.uuid, caller) is not None)
        await eventually(lambda: record(pbx_company, leg.uuid, callee) is not None)
        await converged(pbx, pbx_company)

    seen = [e.state for e in log if e.uuid == start.uuid]
    # The oddities happened: dial/ring after caller-answer, and bridge after answer.
    assert seen.index("caller-answer") < seen.index("dial") and "bridge" in seen
    out = await sync_to_async(record)(pbx_company, start.uuid, caller)
    assert out is not None
    assert (out.outcome, out.direction, out.partner) == (Outcome.ANSWERED, "outbound", callee)
    assert out.started_at == stamp(log, start.uuid, caller, "caller-dial")
    assert out.answered_at == stamp(log, start.uuid, caller, "answer")
    assert out.unknown_states == "bridge"  # kept raw, decided nothing
    into = await sync_to_async(record)(pbx_company, leg.uuid, callee)
    assert into is not None and into.outcome == Outcome.ANSWERED


async def test_click_to_dial_to_a_busy_phone_is_not_answered(
    pbx: Pbx, pbx_company: Company, tracebacks: list[object]
) -> None:
    caller, callee = numbers(pbx_company)[:2]
    await control(
        pbx.control.set_behaviour, pbx.account, caller, answer_after=0.5, hangup_after=None
    )
    await control(pbx.control.set_behaviour, pbx.account, callee, "busy")
    async with running(pbx_company), pbx.client() as client:
        states = [
            event.state
            async for event in client.originate_stream(
                caller, callee, caller_context=pbx.account, callee_context=pbx.account
            )
        ]
        uuid_events = [e for e in states if e]
        assert uuid_events[-1] == "end"
        await eventually(lambda: CallRecord.objects.filter(tenant=pbx_company.tenant).exists())
        await converged(pbx, pbx_company)
        assert await sync_to_async(active_legs)(pbx_company) == truth_legs(pbx) == set()

    [done] = await sync_to_async(
        lambda: list(
            CallRecord.objects.filter(tenant=pbx_company.tenant).select_related("extension")
        )
    )()
    # The busy callee never got a leg; the caller's leg ended unanswered. The simulator's
    # call stream does not say why (the originate stream's `end` says `busy`).
    assert (done.extension.number, done.outcome, done.direction) == (
        caller,
        Outcome.NOT_ANSWERED,
        "outbound",
    )
