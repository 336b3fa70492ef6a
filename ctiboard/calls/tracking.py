"""Correlate call-stream events into active calls and finished call records.

The ingest worker calls these inside its transactions (``ctiboard.ingest.writer``); they write
through the ORM and keep the worker's in-memory ``CallBook`` in step. What happened to the legs
(rang, answered, ended) is collected as ``Happened`` facts; the writer hands them to the
webhook outbox in the same transaction (calls knows nothing of webhooks).

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
  idle or offline (``LINES_WITHOUT_CALL``) at or after the leg's last event
  (``EndedBy.LINE_IDLE``). Should evidence arrive later, it refines the record: a hangup gives
  the exact end, an event after the idle line reopens the leg. Events of a leg that ended by
  hangup are late duplicates and only refine its record.
- A leg whose line stays idle while nothing is heard of it for a grace period (longer than the
  two streams can be apart) never touched a phone: it ends at its last event (``sweep_idle``).
  The caller passes only lines the state stream reported on its current connection: a line
  stored before a gap of that stream says nothing about now.
- A record whose reported values change after its end was noted (a late hangup, a late event,
  answered elsewhere, a reopened leg ending again) is noted ended again with ``revises``: the
  webhooks send it as a correction.
"""

import copy
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection

from ctiboard.cti.events import CallEvent
from ctiboard.lib.bulk import update_rows
from ctiboard.tenancy.models import Extension

from .models import ActiveCall, CallRecord, CallState, EndedBy, Outcome

logger = logging.getLogger(__name__)

NOT_CONNECTED = frozenset(
    {"start", "caller-wait", "caller-dial", "caller-ring", "caller-answer", "dial", "ring"}
)
ERROR_OUTCOMES = {"reject": Outcome.REJECTED, "busy": Outcome.BUSY, "cancel": Outcome.CANCELLED}
_RANK: dict[str, int] = {CallState.IN_CALL: 2, CallState.RINGING: 1, CallState.UNKNOWN: 0}

Key = tuple[str, str]  # (call uuid, extension number)
# What a finished leg writes into its CallRecord.
RECORD_FIELDS = [
    "direction",
    "partner",
    "outcome",
    "error",
    "unknown_states",
    "started_at",
    "answered_at",
    "ended_at",
    "ended_by",
    "ring_seconds",
    "talk_seconds",
]
# What tracking changes on an active leg.
ACTIVE_CALL_FIELDS = (
    "direction",
    "partner",
    "state",
    "raw_state",
    "unknown_states",
    "error",
    "started_at",
    "answered_at",
    "last_event_at",
)


# Legs with a CallRecord that the worker remembers (the latest, from before it started and
# since): only for these is the database asked whether a "new" leg is an old one coming back.
# Late events come seconds or minutes after a leg ended, not thousands of calls later.
REMEMBERED_RECORDS = 20_000
RECENT_RECORDS = 5_000

RINGING, ANSWERED, ENDED = "ringing", "answered", "ended"

# Line states that mean the phone has no call: dangling legs of such a line are over.
LINES_WITHOUT_CALL = frozenset({"idle", "offline"})
# What a webhook reports of an ended leg: a change of any of these is a correction.
REPORTED_FIELDS = (
    "outcome",
    "started_at",
    "answered_at",
    "ended_at",
    "ring_seconds",
    "talk_seconds",
)


@dataclass(frozen=True)
class Happened:
    """A leg rang, was answered or ended: the leg (or its record) as it was at that moment."""

    event: str  # RINGING, ANSWERED or ENDED
    leg: ActiveCall | CallRecord
    at: datetime | None = None  # the answer's time; the leg's own time of the event if None
    # ENDED only: the leg's end may have been noted before; this one corrects it.
    revises: bool = False


@dataclass
class CallBook:
    """The worker's copy of one tenant's active call legs (it is the only writer).

    Changes of active legs are written once per batch (``flush``), not once per event: a leg
    that rings and ends within one batch never touches the ActiveCall table.
    """

    tenant_id: int
    active: dict[Key, ActiveCall] = field(default_factory=dict)
    # time.monotonic() of the last event received per leg (this process's clock only).
    heard: dict[Key, float] = field(default_factory=dict)
    # The same legs by extension number, then call uuid.
    by_number: dict[str, dict[str, ActiveCall]] = field(default_factory=dict)
    dirty: dict[Key, ActiveCall] = field(default_factory=dict)
    # uuid -> extension numbers of its legs with a CallRecord, oldest uuid first.
    recorded: OrderedDict[str, set[str]] = field(default_factory=OrderedDict)
    # The latest records themselves: the hangup that follows an idle line (the usual order of
    # the two streams) refines its record without reading it first.
    recent: OrderedDict[Key, CallRecord] = field(default_factory=OrderedDict)
    # Legs ended (or reopened under a new id) since the last flush: their rows go.
    deleted: list[int] = field(default_factory=list)
    # Facts since the writer last took them (``take_happened``).
    happened: list[Happened] = field(default_factory=list)
    # Active legs whose end may have been noted already: reopened ones, and those loaded from
    # the database (this worker cannot know). Their next end is noted with ``revises``.
    maybe_ended: set[Key] = field(default_factory=set)

    @classmethod
    def load(cls, tenant_id: int, extensions: dict[str, Extension]) -> "CallBook":
        book = cls(tenant_id)
        by_id = {extension.pk: extension for extension in extensions.values()}
        for call in ActiveCall.objects.filter(tenant_id=tenant_id):
            extension = by_id.get(call.extension_id)
            if extension is not None:
                call.extension = extension
                book.track(call)
                book.maybe_ended.add((call.uuid, extension.number))
        latest = CallRecord.objects.filter(tenant_id=tenant_id).order_by("-ended_at")
        numbers = {extension.pk: number for number, extension in extensions.items()}
        rows = latest.values_list("uuid", "extension_id")[:REMEMBERED_RECORDS]
        for uuid, extension_id in list(rows)[::-1]:
            if extension_id in numbers:
                book.remember_record((uuid, numbers[extension_id]))
        return book

    def legs_of(self, number: str) -> list[ActiveCall]:
        return list(self.by_number.get(number, {}).values())

    def track(self, call: ActiveCall) -> None:
        key = (call.uuid, call.extension.number)
        self.active[key] = call
        self.by_number.setdefault(key[1], {})[key[0]] = call
        self.heard[key] = time.monotonic()

    def forget(self, call: ActiveCall) -> None:
        key = (call.uuid, call.extension.number)
        self.active.pop(key, None)
        self.heard.pop(key, None)
        self.maybe_ended.discard(key)
        self.dirty.pop(key, None)
        legs = self.by_number.get(key[1])
        if legs is not None:
            legs.pop(key[0], None)
            if not legs:
                del self.by_number[key[1]]

    def remember_record(self, key: Key) -> None:
        uuid, number = key
        self.recorded.setdefault(uuid, set()).add(number)
        self.recorded.move_to_end(uuid)
        if len(self.recorded) > REMEMBERED_RECORDS:
            self.recorded.popitem(last=False)

    def forget_record(self, key: Key) -> None:
        numbers = self.recorded.get(key[0])
        if numbers is not None:
            numbers.discard(key[1])
        self.recent.pop(key, None)

    def keep_record(self, record: CallRecord, number: str) -> None:
        if record.pk is None:
            return
        key = (record.uuid, number)
        self.recent[key] = record
        self.recent.move_to_end(key)
        if len(self.recent) > RECENT_RECORDS:
            self.recent.popitem(last=False)

    def may_have_record(self, key: Key) -> bool:
        return key[1] in self.recorded.get(key[0], ())

    def may_have_records_of(self, uuid: str) -> bool:
        return bool(self.recorded.get(uuid))

    def note(
        self,
        event: str,
        leg: ActiveCall | CallRecord,
        at: datetime | None = None,
        *,
        revises: bool = False,
    ) -> None:
        # A copy: the leg changes further within the batch, the fact must not.
        self.happened.append(Happened(event, copy.copy(leg), at, revises))

    def take_happened(self) -> list[Happened]:
        happened, self.happened = self.happened, []
        return happened

    def flush(self) -> None:
        """Inside the batch's transaction: write the legs changed since the last flush."""
        if self.deleted:
            ActiveCall.objects.filter(pk__in=self.deleted).delete()
            self.deleted = []
        new = [call for call in self.dirty.values() if call.pk is None]
        if new and connection.features.can_return_rows_from_bulk_insert:
            ActiveCall.objects.bulk_create(new)
        else:
            for call in new:
                call.save()
        update_rows([call for call in self.dirty.values() if call not in new], ACTIVE_CALL_FIELDS)
        self.dirty.clear()


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
            _refine(book, record, state, at)
            return False
        if record is not None:
            call = _reopen(book, record, extension)
        else:
            call = _new_leg(book, extension, event, at)
        book.track(call)
        if record is not None:
            book.maybe_ended.add(key)
    book.heard[key] = time.monotonic()
    _update(book, call, extension, event, state, at)
    book.dirty[key] = call
    if state == "answer" and book.may_have_records_of(event.uuid):
        _answered_elsewhere_after_all(book, event.uuid, extension)
    return True


def _answered_elsewhere_after_all(book: CallBook, uuid: str, extension: Extension) -> None:
    """Hunt group: the legs that rang under this uuid and stopped were answered here; their
    records (reported missed) are corrected."""
    missed = CallRecord.objects.filter(
        tenant_id=book.tenant_id, uuid=uuid, outcome=Outcome.MISSED
    ).exclude(extension=extension)
    for record in missed.select_related("extension"):
        record.outcome = Outcome.ANSWERED_ELSEWHERE
        record.save(update_fields=["outcome"])
        book.note(ENDED, record, revises=True)
    for number in book.recorded.get(uuid, ()):
        kept = book.recent.get((uuid, number))
        if kept is not None and number != extension.number and kept.outcome == Outcome.MISSED:
            kept.outcome = Outcome.ANSWERED_ELSEWHERE


def reconcile_idle(book: CallBook, extension: Extension, idle_since: datetime) -> bool:
    """The line has no call (idle or offline) since ``idle_since``: legs with nothing newer
    are over. The caller vouches that the line state is current."""
    changed = False
    for call in book.legs_of(extension.number):
        if call.last_event_at <= idle_since:
            _finish(book, call, idle_since, EndedBy.LINE_IDLE, call.error)
            changed = True
    return changed


def sweep_idle(book: CallBook, extension: Extension, quiet_since: float) -> bool:
    """End the legs of an extension without a call (its line idle or offline, and current)
    not heard of since ``quiet_since`` (monotonic)."""
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
    book: CallBook,
    call: ActiveCall,
    extension: Extension,
    event: CallEvent,
    state: str,
    at: datetime,
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
            book.note(RINGING, call)
    elif state == "answer":
        call.state = CallState.IN_CALL
        if call.answered_at is None:
            book.note(ANSWERED, call, at)
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
    key = (uuid, extension.number)
    kept = book.recent.get(key)
    if kept is not None:
        return kept
    if not book.may_have_record(key):
        return None
    record = CallRecord.objects.filter(
        tenant_id=book.tenant_id, uuid=uuid, extension=extension
    ).first()
    if record is not None:
        record.extension = extension  # for what it reports, without another query
        book.keep_record(record, extension.number)
    return record


def _reopen(book: CallBook, record: CallRecord, extension: Extension) -> ActiveCall:
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
    book.forget_record((record.uuid, extension.number))
    return call


# --- records ------------------------------------------------------------------------------


def _finish(
    book: CallBook, call: ActiveCall, at: datetime, ended_by: EndedBy, error: str
) -> CallRecord:
    record = CallRecord(
        tenant_id=call.tenant_id,
        uuid=call.uuid,
        extension=call.extension,
        direction=call.direction,
        partner=call.partner,
        outcome=_outcome(book, call, error),
        error=error[:40],
        unknown_states=call.unknown_states,
        started_at=call.started_at,
        answered_at=call.answered_at,
        ended_at=at,
        ended_by=ended_by,
        **_durations(call.started_at, call.answered_at, at),
    )
    # One statement whether or not the leg has a record already (it ended by an idle line
    # and came back): the new one replaces it.
    CallRecord.objects.bulk_create(
        [record],
        update_conflicts=True,
        unique_fields=["tenant", "uuid", "extension"],
        update_fields=RECORD_FIELDS,
    )
    key = (call.uuid, call.extension.number)
    book.remember_record(key)
    book.keep_record(record, call.extension.number)
    book.note(ENDED, record, revises=key in book.maybe_ended)
    if call.pk is not None:
        book.deleted.append(call.pk)
    book.forget(call)
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
    return book.may_have_records_of(call.uuid) and (
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
        book.remember_record((event.uuid, extension.number))
        # A record older than the book remembers is kept: it knows more than this hangup.
        CallRecord.objects.bulk_create(
            [
                CallRecord(
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
            ],
            ignore_conflicts=True,
        )
        return
    if record.ended_by == EndedBy.LINE_IDLE:
        # The hangup we missed after all: its time is the exact end.
        reported = _reported(record)
        record.ended_by = EndedBy.HANGUP
        record.ended_at = at
        if event.error and record.outcome != Outcome.ANSWERED:
            record.error = event.error[:40]
            record.outcome = _error_outcome(event.error, record.direction)
        for name, value in _durations(record.started_at, record.answered_at, at).items():
            setattr(record, name, value)
        record.save()
        if _materially_changed(reported, _reported(record)):
            book.note(ENDED, record, revises=True)


def _error_outcome(error: str, direction: str | None) -> Outcome:
    if error == "timeout":
        return Outcome.MISSED if direction == "inbound" else Outcome.NOT_ANSWERED
    return ERROR_OUTCOMES.get(error, Outcome.UNKNOWN)


def _reported(record: CallRecord) -> tuple[object, ...]:
    return tuple(getattr(record, name) for name in REPORTED_FIELDS)


# Times that moved by less than this are the same to a receiver: the hangup that follows an
# idle line (the usual order of the two streams) refines the end by milliseconds, which is no
# reason for a second "ended" webhook.
CORRECTION_TOLERANCE = 0.5


def _materially_changed(before: tuple[object, ...], after: tuple[object, ...]) -> bool:
    for old, new in zip(before, after, strict=True):
        if isinstance(old, datetime) and isinstance(new, datetime):
            if abs((new - old).total_seconds()) > CORRECTION_TOLERANCE:
                return True
        elif isinstance(old, float) and isinstance(new, float):
            if abs(new - old) > CORRECTION_TOLERANCE:
                return True
        elif old != new:
            return True
    return False


def _refine(book: CallBook, record: CallRecord, state: str, at: datetime) -> None:
    """A late event of a finished leg (e.g. from the overlap of two call streams)."""
    if at > record.ended_at:
        return
    reported = _reported(record)
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
        if _materially_changed(reported, _reported(record)):
            book.note(ENDED, record, revises=True)
