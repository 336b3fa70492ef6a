"""The correlation rules, event by event, through the worker's store (no simulator needed).

Events are what NFON's spec allows, including what the simulator never sends (``error`` on a
leg's ``hangup``), and the real-traffic oddities.
"""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ctiboard.calls.models import ActiveCall, CallRecord, CallState, EndedBy, Outcome
from ctiboard.cti.events import CallEvent, StateEvent, parse_call
from ctiboard.ingest import writer
from ctiboard.tenancy.models import Extension
from tests.calls.events import REMOTE, T0, at, call, line  # noqa: F401
from tests.conftest import Company

pytestmark = pytest.mark.django_db


@pytest.fixture
def state(company: Company) -> writer.TenantState:
    return writer.load_state(company.tenant.pk)


def feed(state: writer.TenantState, *events: CallEvent | StateEvent) -> list[Extension]:
    return writer.apply(state, list(events))


def the_record(uuid: str, ext: str = "100") -> CallRecord:
    return CallRecord.objects.get(uuid=uuid, extension__number=ext)


def test_ring_answer_hangup(state: writer.TenantState) -> None:
    feed(state, call("u1", "ring", seconds=0))
    ext = Extension.objects.get(tenant_id=state.tenant_id, number="100")
    assert (ext.call_state, ext.call_partner, ext.call_direction, ext.call_since) == (
        CallState.RINGING,
        REMOTE,
        "inbound",
        T0,
    )
    feed(state, call("u1", "answer", seconds=4))
    ext.refresh_from_db()
    assert (ext.call_state, ext.call_since) == (CallState.IN_CALL, T0 + timedelta(seconds=4))
    feed(state, call("u1", "hangup", seconds=64))
    record = the_record("u1")
    assert (record.outcome, record.ring_seconds, record.talk_seconds, record.ended_by) == (
        Outcome.ANSWERED,
        4.0,
        60.0,
        EndedBy.HANGUP,
    )
    ext.refresh_from_db()
    assert (ext.call_state, ext.call_partner, ext.call_direction, ext.call_since) == (
        "",
        "",
        "",
        None,
    )
    assert not ActiveCall.objects.exists()


@pytest.mark.parametrize(
    ("error", "direction", "outcome"),
    [
        ("reject", "inbound", Outcome.REJECTED),
        ("busy", "outbound", Outcome.BUSY),
        ("cancel", "outbound", Outcome.CANCELLED),
        ("timeout", "inbound", Outcome.MISSED),
        ("timeout", "outbound", Outcome.NOT_ANSWERED),
        ("unspecified", "inbound", Outcome.UNKNOWN),
        ("future-error", "inbound", Outcome.UNKNOWN),
    ],
)
def test_the_error_of_an_unanswered_leg_decides_its_outcome(
    state: writer.TenantState, error: str, direction: str, outcome: Outcome
) -> None:
    feed(
        state,
        call("u1", "ring", seconds=0, direction=direction),
        call("u1", "hangup", seconds=3, direction=direction, error=error),
    )
    record = the_record("u1")
    assert (record.outcome, record.error, record.ring_seconds) == (outcome, error, 3.0)


def test_a_click_to_dial_end_error_is_kept_for_the_hangup(state: writer.TenantState) -> None:
    feed(
        state,
        call("u1", "caller-dial", direction="outbound", seconds=0),
        call("u1", "caller-answer", direction="outbound", seconds=1),
        call("u1", "end", direction="outbound", seconds=2, error="busy"),
        call("u1", "hangup", direction="outbound", seconds=2),
    )
    assert the_record("u1").outcome == Outcome.BUSY


def test_unanswered_legs_without_error(state: writer.TenantState) -> None:
    feed(
        state,
        call("in", "ring", "100", 0),
        call("in", "hangup", "100", 5),
        call("out", "dial", "101", 0, direction="outbound"),
        call("out", "hangup", "101", 5, direction="outbound"),
    )
    assert the_record("in", "100").outcome == Outcome.MISSED
    assert the_record("out", "101").outcome == Outcome.NOT_ANSWERED


def test_bridge_is_kept_raw_and_decides_nothing(state: writer.TenantState) -> None:
    feed(state, call("u1", "bridge", seconds=1))
    leg = ActiveCall.objects.get(uuid="u1")
    assert (leg.state, leg.raw_state, leg.unknown_states) == (CallState.UNKNOWN, "bridge", "bridge")
    assert Extension.objects.get(number="100", tenant_id=state.tenant_id).call_state == "unknown"
    feed(state, call("u1", "hangup", seconds=9))
    record = the_record("u1")
    # Was it answered? Nothing documented says so: no guess.
    assert (record.outcome, record.unknown_states, record.talk_seconds) == (
        Outcome.UNKNOWN,
        "bridge",
        None,
    )

    feed(
        state,
        call("u2", "ring", seconds=10),
        call("u2", "answer", seconds=12),
        call("u2", "bridge", seconds=12),
        call("u2", "hangup", seconds=20),
    )
    record = the_record("u2")
    assert (record.outcome, record.unknown_states, record.talk_seconds) == (
        Outcome.ANSWERED,
        "bridge",
        8.0,
    )


def test_dial_and_ring_after_answer_never_go_back_to_ringing(state: writer.TenantState) -> None:
    out = {"direction": "outbound"}
    feed(
        state,
        call("u1", "caller-dial", seconds=0, **out),
        call("u1", "caller-ring", seconds=1, **out),
        call("u1", "caller-answer", seconds=2, **out),
        call("u1", "dial", seconds=3, **out),
        call("u1", "answer", seconds=5, **out),
        call("u1", "ring", seconds=6, **out),  # late, as real traffic sends it
    )
    leg = ActiveCall.objects.get(uuid="u1")
    assert (leg.state, leg.started_at, leg.answered_at) == (
        CallState.IN_CALL,
        T0,
        T0 + timedelta(seconds=5),
    )
    feed(state, call("u1", "hangup", seconds=15, **out))
    record = the_record("u1")
    assert (record.outcome, record.ring_seconds, record.talk_seconds) == (
        Outcome.ANSWERED,
        5.0,
        10.0,
    )


def test_caller_answer_alone_is_not_an_answered_call(state: writer.TenantState) -> None:
    out = {"direction": "outbound"}
    feed(
        state,
        call("u1", "caller-dial", seconds=0, **out),
        call("u1", "caller-answer", seconds=2, **out),
        call("u1", "hangup", seconds=9, **out),
    )
    assert the_record("u1").outcome == Outcome.NOT_ANSWERED


@pytest.mark.parametrize("answer_first", [False, True])
def test_hunt_group_legs_answered_elsewhere(state: writer.TenantState, answer_first: bool) -> None:
    rings = [call("h", "ring", ext, 0) for ext in ("100", "101", "102")]
    drops = [call("h", "hangup", ext, 3) for ext in ("100", "102")]
    answer = [call("h", "answer", "101", 3)]
    feed(state, *rings, *(answer + drops if answer_first else drops + answer))
    assert set(ActiveCall.objects.values_list("extension__number", flat=True)) == {"101"}
    feed(state, call("h", "hangup", "101", 30))
    outcomes = dict(CallRecord.objects.values_list("extension__number", "outcome"))
    assert outcomes == {
        "100": Outcome.ANSWERED_ELSEWHERE,
        "101": Outcome.ANSWERED,
        "102": Outcome.ANSWERED_ELSEWHERE,
    }


def test_answer_without_prior_events_starts_an_in_call_leg(state: writer.TenantState) -> None:
    feed(state, call("u1", "answer", seconds=10), call("u1", "hangup", seconds=40))
    record = the_record("u1")
    assert (record.outcome, record.started_at, record.ring_seconds, record.talk_seconds) == (
        Outcome.ANSWERED,
        None,
        None,
        30.0,
    )


def test_hangup_without_prior_events_is_recorded_as_unknown(state: writer.TenantState) -> None:
    feed(state, call("u1", "hangup", seconds=10))
    record = the_record("u1")
    assert (record.outcome, record.partner, record.ring_seconds, record.talk_seconds) == (
        Outcome.UNKNOWN,
        REMOTE,
        None,
        None,
    )


def test_an_idle_line_ends_a_dangling_leg_and_a_late_hangup_refines_it(
    state: writer.TenantState,
) -> None:
    feed(state, call("u1", "ring", seconds=0), call("u1", "answer", seconds=2))
    # A state from before the last call event must not end the leg (streams race).
    feed(state, line("100", "in-use", 2), line("100", "idle", 1))
    assert ActiveCall.objects.filter(uuid="u1").exists()
    changed = feed(state, line("100", "ringing", 3), line("100", "idle", 20))
    assert [e.number for e in changed] == ["100"]
    record = the_record("u1")
    assert (record.outcome, record.ended_by, record.talk_seconds) == (
        Outcome.ANSWERED,
        EndedBy.LINE_IDLE,
        18.0,
    )
    assert Extension.objects.get(number="100", tenant_id=state.tenant_id).call_state == ""
    # The hangup arrives after all (a slow call stream): the exact end replaces the guess.
    feed(state, call("u1", "hangup", seconds=19))
    record = the_record("u1")
    assert (record.ended_by, record.talk_seconds) == (EndedBy.HANGUP, 17.0)
    assert not ActiveCall.objects.exists()


def test_a_leg_ended_by_an_idle_line_reopens_on_newer_events(state: writer.TenantState) -> None:
    feed(state, call("u1", "ring", seconds=0), line("100", "idle", 1))
    assert the_record("u1").ended_by == EndedBy.LINE_IDLE
    feed(state, call("u1", "answer", seconds=2))
    assert not CallRecord.objects.exists()
    leg = ActiveCall.objects.get(uuid="u1")
    assert (leg.state, leg.started_at) == (CallState.IN_CALL, T0)


def test_late_events_of_a_finished_leg_only_refine_its_record(state: writer.TenantState) -> None:
    # The overlap of two call streams during a renewal may deliver an event twice, late.
    feed(state, call("u1", "answer", seconds=2), call("u1", "hangup", seconds=10))
    feed(state, call("u1", "ring", seconds=0), call("u1", "answer", seconds=2))
    assert not ActiveCall.objects.exists()
    record = the_record("u1")
    assert (record.started_at, record.ring_seconds, record.talk_seconds) == (T0, 2.0, 8.0)


def test_reconcile_after_a_call_stream_gap(state: writer.TenantState) -> None:
    feed(state, call("u1", "ring", seconds=0), call("u2", "ring", "101", 0))
    feed(state, line("100", "idle", 5), line("101", "ringing", 5))
    # (the idle event above already ended u1; u2's line still rings)
    assert set(ActiveCall.objects.values_list("uuid", flat=True)) == {"u2"}
    state.extensions["101"].line = "idle"  # as if stored while the call stream was away
    state.extensions["101"].line_since = T0 + timedelta(seconds=6)
    changed = writer.reconcile_calls(state)
    assert [e.number for e in changed] == ["101"]
    assert not ActiveCall.objects.exists()
    assert the_record("u2", "101").ended_by == EndedBy.LINE_IDLE


def test_writes_are_idempotent(state: writer.TenantState) -> None:
    batch = [call("u1", "ring", seconds=0), call("u1", "answer", seconds=1)]
    assert feed(state, *batch)
    seq = state.seq
    assert feed(state, *batch) == []
    assert state.seq == seq
    feed(state, call("u1", "hangup", seconds=5))
    seq = state.seq
    assert feed(state, call("u1", "hangup", seconds=5)) == []
    assert (state.seq, CallRecord.objects.count()) == (seq, 1)


def test_each_tile_change_takes_the_next_sequence_number(
    state: writer.TenantState, company: Company
) -> None:
    seq = state.seq
    changed = feed(state, call("u1", "ring", "100", 0), call("u2", "ring", "101", 0))
    assert sorted(e.seq for e in changed) == [seq + 1, seq + 2]
    ext = Extension.objects.get(number="101", tenant=company.tenant)
    assert ext.seq == seq + 2
    payload = ext.to_payload()
    assert (payload["call_state"], payload["call_partner"], payload["call_direction"]) == (
        "ringing",
        REMOTE,
        "inbound",
    )
    again = Extension.from_payload(payload)
    assert (again.call_state, again.call_since) == ("ringing", T0)


def test_in_a_call_is_shown_before_another_ringing_call(state: writer.TenantState) -> None:
    feed(state, call("u1", "ring", seconds=0), call("u1", "answer", seconds=1))
    feed(state, call("u2", "ring", seconds=5, caller="4989111"))
    ext = Extension.objects.get(number="100", tenant_id=state.tenant_id)
    assert (ext.call_state, ext.call_partner) == (CallState.IN_CALL, REMOTE)
    feed(state, call("u1", "hangup", seconds=6))
    ext.refresh_from_db()
    assert (ext.call_state, ext.call_partner) == (CallState.RINGING, "4989111")


def test_unattributable_and_foreign_events_are_skipped(state: writer.TenantState) -> None:
    feed(
        state,
        parse_call({"uuid": "u1", "state": "ring"}),  # no extension
        call("u2", "ring", customer="K0000"),
        call("u3", "ring", "777"),  # not listed yet: the extension appears
    )
    assert list(ActiveCall.objects.values_list("uuid", flat=True)) == ["u3"]
    assert Extension.objects.filter(number="777", tenant_id=state.tenant_id).exists()


# --- after a restart, and what a batch writes ---------------------------------------------


def restarted(state: writer.TenantState) -> writer.TenantState:
    """The worker's state as a new worker process loads it."""
    return writer.load_state(state.tenant_id)


def test_late_events_refine_a_record_from_before_the_worker_started(
    state: writer.TenantState,
) -> None:
    feed(state, call("u1", "answer", seconds=2), call("u1", "hangup", seconds=10))
    state = restarted(state)
    feed(state, call("u1", "ring", seconds=0))
    assert not ActiveCall.objects.exists()
    assert (the_record("u1").started_at, the_record("u1").ring_seconds) == (T0, 2.0)


def test_a_leg_ended_by_an_idle_line_reopens_after_the_worker_restarted(
    state: writer.TenantState,
) -> None:
    feed(state, call("u1", "ring", seconds=0), line("100", "idle", 1))
    state = restarted(state)
    feed(state, call("u1", "answer", seconds=2))
    assert not CallRecord.objects.exists()
    assert ActiveCall.objects.get(uuid="u1").state == CallState.IN_CALL
    feed(state, call("u1", "hangup", seconds=12))
    record = the_record("u1")
    assert (record.outcome, record.ended_by, record.talk_seconds) == (
        Outcome.ANSWERED,
        EndedBy.HANGUP,
        10.0,
    )


def test_a_hangup_never_overwrites_a_record_the_worker_forgot(
    state: writer.TenantState, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed(state, call("u1", "ring", seconds=0), call("u1", "answer", seconds=1))
    feed(state, call("u1", "hangup", seconds=31))
    monkeypatch.setattr("ctiboard.calls.tracking.REMEMBERED_RECORDS", 0)
    state = restarted(state)
    # A stray hangup of that leg, repeated much later: the record keeps what it knew.
    feed(state, call("u1", "hangup", seconds=40, error="cancel"))
    record = the_record("u1")
    assert (record.outcome, record.talk_seconds) == (Outcome.ANSWERED, 30.0)


def activecall_statements(queries: CaptureQueriesContext) -> list[str]:
    """The statements that wrote active legs (an executemany is logged as "N times: …")."""
    statements = [q["sql"].split(" times: ")[-1] for q in queries.captured_queries]
    return [
        sql.split()[0]
        for sql in statements
        if "calls_activecall" in sql and not sql.startswith("SELECT")
    ]


def test_a_batch_writes_its_legs_once(state: writer.TenantState) -> None:
    uuids = [f"u{i}" for i in range(20)]
    with CaptureQueriesContext(connection) as queries:
        feed(state, *(call(uuid, "ring", seconds=0) for uuid in uuids))
    assert activecall_statements(queries) == ["INSERT"]
    with CaptureQueriesContext(connection) as queries:
        feed(state, *(call(uuid, "answer", seconds=1) for uuid in uuids))
    assert activecall_statements(queries) == ["UPDATE"]
    assert set(ActiveCall.objects.values_list("state", flat=True)) == {CallState.IN_CALL}
    with CaptureQueriesContext(connection) as queries:
        feed(state, *(call(uuid, "hangup", seconds=9) for uuid in uuids))
    assert activecall_statements(queries) == ["DELETE"]
    assert not ActiveCall.objects.exists()
    assert CallRecord.objects.filter(outcome=Outcome.ANSWERED).count() == 20


def test_a_leg_that_starts_and_ends_in_one_batch_never_becomes_an_active_row(
    state: writer.TenantState,
) -> None:
    with CaptureQueriesContext(connection) as queries:
        feed(state, call("u1", "ring", seconds=0), call("u1", "hangup", seconds=5))
    assert activecall_statements(queries) == []
    assert the_record("u1").outcome == Outcome.MISSED


def test_a_batch_of_call_events_reads_the_webhooks_once(state: writer.TenantState) -> None:
    with CaptureQueriesContext(connection) as queries:
        feed(
            state,
            *(call(f"u{i}", "ring", seconds=0) for i in range(10)),
            *(call(f"u{i}", "hangup", seconds=3) for i in range(10)),
        )
    assert sum("webhooks_webhook" in q["sql"] for q in queries.captured_queries) == 1


def test_the_hangup_after_an_idle_line_refines_the_record_without_reading_it(
    state: writer.TenantState,
) -> None:
    feed(state, call("u1", "ring", seconds=0), call("u1", "answer", seconds=2))
    feed(state, line("100", "idle", 20))
    with CaptureQueriesContext(connection) as queries:
        feed(state, call("u1", "hangup", seconds=19))
    reads = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    assert not [sql for sql in reads if "calls_callrecord" in sql]
    record = the_record("u1")
    assert (record.ended_by, record.talk_seconds) == (EndedBy.HANGUP, 17.0)


def test_an_offline_line_ends_a_dangling_leg_like_an_idle_one(state: writer.TenantState) -> None:
    feed(state, call("u1", "ring", seconds=0), call("u1", "answer", seconds=2))
    feed(state, line("100", "offline", 1))  # older than the answer: says nothing of it
    assert ActiveCall.objects.filter(uuid="u1").exists()
    feed(state, line("100", "offline", 30))
    assert not ActiveCall.objects.exists()
    record = the_record("u1")
    assert (record.outcome, record.ended_by, record.talk_seconds) == (
        Outcome.ANSWERED,
        EndedBy.LINE_IDLE,
        28.0,
    )


def test_lines_from_before_the_state_stream_reconnected_end_no_call(
    state: writer.TenantState,
) -> None:
    feed(state, line("100", "idle", 0), line("101", "idle", 0))
    feed(state, call("u1", "ring", "100", 5), call("u2", "ring", "101", 5))
    writer.state_stream_changed(state)  # lost: what is stored may be stale from now on
    state.extensions["101"].line_since = T0 + timedelta(seconds=6)  # as if idle after the ring
    assert writer.sweep_calls(state, 0.0) == []
    assert writer.reconcile_calls(state) == []
    assert set(ActiveCall.objects.values_list("uuid", flat=True)) == {"u1", "u2"}
    writer.state_stream_changed(state)  # reopened: its bootstrap reports each line again
    feed(state, line("100", "idle", 0))
    assert [e.number for e in writer.sweep_calls(state, 0.0)] == ["100"]
    assert set(ActiveCall.objects.values_list("uuid", flat=True)) == {"u2"}
