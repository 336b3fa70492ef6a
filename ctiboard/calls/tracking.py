"""Correlate call-stream events into active calls and finished call records.

The ingest worker calls these inside its transactions (``ctiboard.pbx.store``); they write
through the ORM and keep the worker's in-memory ``CallBook`` in step.

The rules, per leg (call uuid + extension; a hunt group rings several extensions under one
uuid, an internal call has one uuid per extension):

- ``start``, ``caller-wait``, ``caller-dial``, ``caller-ring``, ``caller-answer``, ``dial`` and
  ``ring`` mean the leg is not connected to its partner yet: state ``ringing``. The earliest of
  them is the start of ringing. ``caller-answer`` only connects the click-to-dial caller to the
  PBX, so it does not count as answered.
- ``answer`` connects the leg: state ``in-call``, answered at the (earliest) answer. Nothing
  moves an answered leg back to ringing (real traffic repeats ``dial``/``ring`` after
  ``caller-answer``).
- ``hangup`` finishes the leg into a ``CallRecord``; ``end`` is the end of a click-to-dial
  *request*, not of the call: only its ``error`` is kept.
- Any other state (``bridge``, future values) is kept raw and changes nothing: no guessing.
  A leg known only from such states is in state ``unknown`` and ends with outcome ``unknown``.
- Outcome: answered if an answer was seen; else the ``error`` decides (reject, busy, cancel;
  timeout = missed/not answered; anything else unknown); else an inbound leg is missed, or
  answered elsewhere when another leg of the same uuid was answered, an outbound leg is not
  answered; a leg without a documented state is unknown.
- The stream has no history: events of an unknown leg start it where they find it (an ``answer``
  first gives an in-call leg without ring time); a ``hangup`` of an unknown leg is recorded with
  outcome unknown and no durations.
- Dangling legs (their hangup fell into a stream gap) end when the extension's line is reported
  idle at or after the leg's last event (``EndedBy.LINE_IDLE``). Should evidence arrive later,
  it refines the record: a hangup gives the exact end, an event after the idle line reopens the
  leg. Events of a leg that ended by hangup are late duplicates and only refine its record.
- A leg whose line stays idle while nothing is heard of it for a grace period (longer than the
  two streams can be apart) never touched a phone: it ends at its last event (``sweep_idle``).
"""

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime

from ctiboard.cti.events import CallEvent
from ctiboard.pbx.models import Extension
from ctiboard.webhooks import outbox as webhooks

from .models import ActiveCall, CallRecord, CallState, EndedBy, Outcome

logger = logging.getLogger(__name__)

NOT_CONNECTED = frozenset(
    {"start", "caller-wait", "caller-dial", "caller-ring", "caller-answer", "dial", "ring"}
)
ERROR_OUTCOMES = {"reject": Outcome.REJECTED, "busy": Outcome.BUSY, "cancel": Outcome.CANCELLED}
_RANK: dict[str, int] = {CallState.IN_CALL: 2, CallState.RINGING: 1, CallState.UNKNOWN: 0}

Key = tuple[str, str]  # (call uuid, extension number)


@dataclass
class CallBook:
    """The worker's copy of one tenant's active call legs (it is the only writer)."""

    tenant_id: int
    active: dict[Key, ActiveCall] = field(default_factory=dict)
    # time.monotonic() of the last event received per leg (this process's clock only).
    heard: dict[Key, float] = field(default_factory=dict)

    @classmethod
    def load(cls, tenant_id: int, extensions: dict[str, Extension]) -> "CallBook":
        book = cls(tenant_id)
        by_id = {extension.pk: extension for extension in extensions.values()}
        for call in ActiveCall.objects.filter(tenant_id=tenant_id):
            extension = by_id.get(call.extension_id)
            if extension is not None:
                call.extension = extension
                book.active[(call.uuid, extension.number)] = call
                book.heard[(call.uuid, extension.number)] = time.monotonic()
        return book

    def legs_of(self, number: str) -> list[ActiveCall]:
        return [call for (_, leg_number), call in self.active.items() if leg_number == number]


def apply_event(book: CallBook, extension: Extension, event: CallEvent, now: datetime) -> bool:
    """Store one event of ``extension``'s leg; True if its active calls changed."""
    at = event.updated or now
    state = event.state or ""
    key = (event.uuid, extension.number)
    call = book.active.get(key)
    if state == "hangup":
        if call is not None:
            _finish(book, call, at, EndedBy.HANGUP, event.error or call.error)
            return True
        _hangup_of_unknown_leg(book, extension, event, at)
        return False
    if call is None:
        if state == "end":
            return False  # the end of a request says nothing about a leg we do not know
        record = _record(book, event.uuid, extension)
        if record is not None and (record.ended_by == EndedBy.HANGUP or at <= record.ended_at):
            _refine(record, state, at)
            return False
        if record is not None:
            call = _reopen(record, extension)
        else:
            call = _new_leg(book, extension, event, at)
        book.active[key] = call
    book.heard[key] = time.monotonic()
    _update(call, extension, event, state, at)
    call.save()
    if state == "answer":
        # Hunt group: the legs that rang under this uuid and stopped were answered here.
        CallRecord.objects.filter(
            tenant_id=book.tenant_id, uuid=event.uuid, outcome=Outcome.MISSED
        ).exclude(extension=extension).update(outcome=Outcome.ANSWERED_ELSEWHERE)
    return True


def reconcile_idle(book: CallBook, extension: Extension, idle_since: datetime) -> bool:
    """The line is idle since ``idle_since``: legs with nothing newer are over."""
    changed = False
    for call in book.legs_of(extension.number):
        if call.last_event_at <= idle_since:
            _finish(book, call, idle_since, EndedBy.LINE_IDLE, call.error)
            changed = True
    return changed


def sweep_idle(book: CallBook, extension: Extension, quiet_since: float) -> bool:
    """End the legs of an idle extension not heard of since ``quiet_since`` (monotonic)."""
    changed = False
    for call in book.legs_of(extension.number):
        if book.heard.get((call.uuid, extension.number), 0.0) <= quiet_since:
            _finish(book, call, call.last_event_at, EndedBy.LINE_IDLE, call.error)
            changed = True
    return changed


def show_current_call(book: CallBook, extension: Extension) -> bool:
    """Copy the extension's most relevant leg onto it (in a call before ringing, then the
    latest); True if that changed what its tile shows."""
    legs = book.legs_of(extension.number)
    current = max(legs, key=lambda c: (_RANK.get(c.state, 0), c.last_event_at), default=None)
    shown = (
        ("", "", "", None)
        if current is None
        else (current.state, current.partner, current.direction, current.since)
    )
    before = (
        extension.call_state,
        extension.call_partner,
        extension.call_direction,
        extension.call_since,
    )
    if shown == before:
        return False
    (
        extension.call_state,
        extension.call_partner,
        extension.call_direction,
        extension.call_since,
    ) = shown
    return True


# --- legs ---------------------------------------------------------------------------------


def _partner(event: CallEvent, number: str) -> str:
    if event.direction == "inbound":
        return event.caller or ""
    if event.direction == "outbound":
        return event.callee or ""
    if event.callee == number:
        return event.caller or ""
    if event.caller == number:
        return event.callee or ""
    return ""


def _new_leg(book: CallBook, extension: Extension, event: CallEvent, at: datetime) -> ActiveCall:
    return ActiveCall(
        tenant_id=book.tenant_id,
        extension=extension,
        uuid=event.uuid,
        state=CallState.UNKNOWN,
        last_event_at=at,
    )


def _update(
    call: ActiveCall, extension: Extension, event: CallEvent, state: str, at: datetime
) -> None:
    call.raw_state = state[:40]
    if event.direction:
        call.direction = event.direction[:16]
    partner = _partner(event, extension.number)
    if partner:
        call.partner = partner[:64]
    if event.error:
        call.error = event.error[:40]
    call.last_event_at = max(call.last_event_at, at)
    if state in NOT_CONNECTED:
        if call.answered_at is None or at <= call.answered_at:
            call.started_at = at if call.started_at is None else min(call.started_at, at)
        if call.state == CallState.UNKNOWN:
            call.state = CallState.RINGING
            webhooks.enqueue(webhooks.RINGING, call)
    elif state == "answer":
        call.state = CallState.IN_CALL
        if call.answered_at is None:
            webhooks.enqueue(webhooks.ANSWERED, call, at=at)
        call.answered_at = at if call.answered_at is None else min(call.answered_at, at)
    elif state != "end":
        call.unknown_states = _noted(call.unknown_states, state or "(none)")
        logger.info(
            "call %s at %s: undocumented state %r kept raw", call.uuid, extension.number, state
        )


def _noted(seen: str, state: str) -> str:
    states = seen.split() if seen else []
    if state not in states:
        states.append(state.replace(" ", "_"))
    return " ".join(states)[:200]


def _record(book: CallBook, uuid: str, extension: Extension) -> CallRecord | None:
    return CallRecord.objects.filter(
        tenant_id=book.tenant_id, uuid=uuid, extension=extension
    ).first()


def _reopen(record: CallRecord, extension: Extension) -> ActiveCall:
    """A leg ended because its line went idle shows life after all: it goes on."""
    if record.answered_at is not None:
        state = CallState.IN_CALL
    elif record.started_at is not None:
        state = CallState.RINGING
    else:
        state = CallState.UNKNOWN
    call = ActiveCall(
        tenant_id=record.tenant_id,
        extension=extension,
        uuid=record.uuid,
        direction=record.direction,
        partner=record.partner,
        state=state,
        unknown_states=record.unknown_states,
        error=record.error,
        started_at=record.started_at,
        answered_at=record.answered_at,
        last_event_at=record.ended_at,
    )
    record.delete()
    return call


# --- records ------------------------------------------------------------------------------


def _finish(
    book: CallBook, call: ActiveCall, at: datetime, ended_by: EndedBy, error: str
) -> CallRecord:
    outcome = _outcome(book, call, error)
    record, _ = CallRecord.objects.update_or_create(
        tenant_id=call.tenant_id,
        uuid=call.uuid,
        extension=call.extension,
        defaults={
            "direction": call.direction,
            "partner": call.partner,
            "outcome": outcome,
            "error": error[:40],
            "unknown_states": call.unknown_states,
            "started_at": call.started_at,
            "answered_at": call.answered_at,
            "ended_at": at,
            "ended_by": ended_by,
            **_durations(call.started_at, call.answered_at, at),
        },
    )
    webhooks.enqueue(webhooks.ENDED, record)
    if call.pk is not None:
        call.delete()
    book.active.pop((call.uuid, call.extension.number), None)
    book.heard.pop((call.uuid, call.extension.number), None)
    return record


def _outcome(book: CallBook, call: ActiveCall, error: str) -> Outcome:
    if call.answered_at is not None:
        return Outcome.ANSWERED
    if error:
        if error == "timeout":
            return Outcome.MISSED if call.direction == "inbound" else Outcome.NOT_ANSWERED
        return ERROR_OUTCOMES.get(error, Outcome.UNKNOWN)
    if call.state == CallState.UNKNOWN:
        return Outcome.UNKNOWN
    if call.direction == "inbound":
        return Outcome.ANSWERED_ELSEWHERE if _answered_elsewhere(book, call) else Outcome.MISSED
    if call.direction == "outbound":
        return Outcome.NOT_ANSWERED
    return Outcome.UNKNOWN


def _answered_elsewhere(book: CallBook, call: ActiveCall) -> bool:
    for (uuid, number), other in book.active.items():
        if uuid == call.uuid and number != call.extension.number and other.answered_at:
            return True
    return (
        CallRecord.objects.filter(
            tenant_id=book.tenant_id, uuid=call.uuid, outcome=Outcome.ANSWERED
        )
        .exclude(extension_id=call.extension_id)
        .exists()
    )


def _durations(
    started_at: datetime | None, answered_at: datetime | None, ended_at: datetime
) -> dict[str, float | None]:
    ring_end = answered_at or ended_at
    return {
        "ring_seconds": max(0.0, (ring_end - started_at).total_seconds()) if started_at else None,
        "talk_seconds": max(0.0, (ended_at - answered_at).total_seconds()) if answered_at else None,
    }


def _hangup_of_unknown_leg(
    book: CallBook, extension: Extension, event: CallEvent, at: datetime
) -> None:
    record = _record(book, event.uuid, extension)
    if record is None:
        # Started before the stream connected: a call ended, nothing more is known.
        error = event.error or ""
        CallRecord.objects.create(
            tenant_id=book.tenant_id,
            extension=extension,
            uuid=event.uuid,
            direction=(event.direction or "")[:16],
            partner=_partner(event, extension.number)[:64],
            outcome=_error_outcome(error, event.direction),
            error=error[:40],
            ended_at=at,
            ended_by=EndedBy.HANGUP,
        )
        return
    if record.ended_by == EndedBy.LINE_IDLE:
        # The hangup we missed after all: its time is the exact end.
        record.ended_by = EndedBy.HANGUP
        record.ended_at = at
        if event.error and record.outcome != Outcome.ANSWERED:
            record.error = event.error[:40]
            record.outcome = _error_outcome(event.error, record.direction)
        for name, value in _durations(record.started_at, record.answered_at, at).items():
            setattr(record, name, value)
        record.save()


def _error_outcome(error: str, direction: str | None) -> Outcome:
    if error == "timeout":
        return Outcome.MISSED if direction == "inbound" else Outcome.NOT_ANSWERED
    return ERROR_OUTCOMES.get(error, Outcome.UNKNOWN)


def _refine(record: CallRecord, state: str, at: datetime) -> None:
    """A late event of a finished leg (e.g. from the overlap of two call streams)."""
    if at > record.ended_at:
        return
    changed = False
    if state == "answer" and record.answered_at is None:
        record.answered_at = at
        record.outcome = Outcome.ANSWERED
        changed = True
    earlier = record.started_at is None or at < record.started_at
    before_answer = record.answered_at is None or at <= record.answered_at
    if state in NOT_CONNECTED and earlier and before_answer:
        record.started_at = at
        changed = True
    if changed:
        for name, value in _durations(
            record.started_at, record.answered_at, record.ended_at
        ).items():
            setattr(record, name, value)
        record.save()
