"""Database writes of the ingest worker. Synchronous; the worker calls them in a thread.

Each function is one transaction and idempotent: applying the same state twice changes
nothing and pushes nothing. Every stored change of an extension (line, presence, current call,
name) takes the tenant's next sequence number; the push goes out after the commit.

If a function raises, the in-memory ``TenantState`` may be ahead of the database: the caller
must reload it with ``load_state``.
"""

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from ctiboard.calls import attempts, tracking
from ctiboard.contacts.models import Contact
from ctiboard.contacts.models import lookup as lookup_contacts
from ctiboard.cti.events import CallEvent, ExtensionData, StateEvent
from ctiboard.lib.bulk import update_rows
from ctiboard.lib.metrics import EVENTS_INGESTED
from ctiboard.live import publish
from ctiboard.tenancy.models import ConnectionStatus, Extension, Tenant
from ctiboard.webhooks import outbox

logger = logging.getLogger(__name__)

# Everything of an extension the worker writes, in one statement per batch.
LIVE_FIELDS = [
    "line",
    "presence",
    "line_since",
    "presence_since",
    "call_state",
    "call_partner",
    "call_direction",
    "call_since",
    "seq",
]
# Tenant.last_event_at is written at most this often when nothing else changes.
LAST_EVENT_WRITE_INTERVAL = 1.0
# Seconds between looks for stale click-to-call attempts: one query per tenant, rarely.
ATTEMPT_CHECK_INTERVAL = 60.0


@dataclass
class TenantState:
    """The worker's copy of what is stored for one tenant (it is the only writer)."""

    tenant_id: int
    account: str
    seq: int
    # For the phonebook lookup of call partners (its country code reads national numbers).
    tenant: Tenant | None = None
    extensions: dict[str, Extension] = field(default_factory=dict)
    calls: tracking.CallBook = field(default_factory=lambda: tracking.CallBook(0))
    webhooks: outbox.Subscriptions = field(default_factory=lambda: outbox.Subscriptions(0))
    last_event_written: float = 0.0  # time.monotonic() of the last last_event_at write
    # Extensions whose line the state stream reported on its current connection: only their
    # stored line says what the phone does now, and may end calls (a line stored before a gap
    # of that stream is stale; the bootstrap after a reconnect reports every line again).
    lines_current: set[str] = field(default_factory=set)
    attempts_checked: float = 0.0  # time.monotonic() of the last look for stale call attempts
    # Ended outbound legs: uuid -> (time.monotonic() after which an attempt of that uuid still
    # open is concluded, its error); see calls.attempts.
    attempts_due: dict[str, tuple[float, str]] = field(default_factory=dict)


def load_state(tenant_id: int) -> TenantState:
    tenant = Tenant.objects.get(pk=tenant_id)
    state = TenantState(
        tenant_id=tenant.pk, account=tenant.account, seq=tenant.event_seq, tenant=tenant
    )
    for extension in Extension.objects.filter(tenant=tenant):
        state.extensions[extension.number] = extension
    state.calls = tracking.CallBook.load(tenant.pk, state.extensions)
    state.webhooks = outbox.Subscriptions(tenant.pk)
    return state


def sync_extensions(state: TenantState, listed: Iterable[ExtensionData]) -> None:
    """Make the stored extension list match /extensions/phone/data."""
    listed = list(listed)
    seen: set[str] = set()
    changed: list[Extension] = []
    with transaction.atomic():
        for data in listed:
            seen.add(data.number)
            extension = state.extensions.get(data.number)
            if extension is None:
                extension = Extension.objects.create(
                    tenant_id=state.tenant_id,
                    number=data.number,
                    name=data.name,
                    api_uuid=data.uuid,
                )
                state.extensions[data.number] = extension
                changed.append(extension)
            elif (extension.name, extension.api_uuid, extension.active) != (
                data.name,
                data.uuid,
                True,
            ):
                extension.name, extension.api_uuid, extension.active = data.name, data.uuid, True
                extension.save(update_fields=["name", "api_uuid", "active"])
                changed.append(extension)
        for number, extension in state.extensions.items():
            if number not in seen and extension.active:
                extension.active = False
                extension.save(update_fields=["active"])
                changed.append(extension)
        if changed:
            _stamp(state, changed)
            publish.extensions_changed(changed)


def _stamp(state: TenantState, changed: list[Extension]) -> None:
    for extension in changed:
        state.seq += 1
        extension.seq = state.seq
    update_rows(changed, ["seq"])
    Tenant.objects.filter(pk=state.tenant_id).update(event_seq=state.seq)


def apply(state: TenantState, received: Sequence[StateEvent | CallEvent]) -> list[Extension]:
    """Store a batch of state and call events in the order received; returns the extensions
    whose tiles changed."""
    EVENTS_INGESTED.labels(state.account).inc(
        sum(1 for event in received if isinstance(event, StateEvent))
    )
    now = timezone.now()
    changed: dict[str, Extension] = {}
    calls_changed: dict[str, Extension] = {}
    reported: list[dict[str, Any]] = []
    with transaction.atomic():
        for event in received:
            if event.customer and event.customer != state.account:
                logger.warning(
                    "%s: ignored an event for foreign customer %s", state.account, event.customer
                )
                continue
            if isinstance(event, StateEvent):
                extension = _extension(state, event.extension)
                if _apply(extension, event, now):
                    changed[extension.number] = extension
                if event.line is not None:
                    state.lines_current.add(extension.number)
                # An idle or offline line has no call: legs whose hangup we missed end here.
                if event.line in tracking.LINES_WITHOUT_CALL and tracking.reconcile_idle(
                    state.calls, extension, event.updated or now
                ):
                    calls_changed[extension.number] = extension
            else:
                if not event.extension:
                    logger.warning(
                        "%s: skipped call event %s without extension", state.account, event.uuid
                    )
                    continue
                extension = _extension(state, event.extension)
                if tracking.apply_event(state.calls, extension, event, now):
                    calls_changed[extension.number] = extension
                reported.append(event.raw)
        for number, extension in calls_changed.items():
            if tracking.show_current_call(state.calls, extension):
                changed[number] = extension
        _flush_calls(state)
        # Before the tiles: a gateway client sees a call's event no later than its line.
        publish.calls_reported(state.tenant_id, reported)
        _save(state, list(changed.values()), now, events_received=bool(received))
    return list(changed.values())


def _flush_calls(state: TenantState) -> None:
    """Write the changed call legs and queue what happened to them for the webhooks."""
    state.calls.flush()
    happened = state.calls.take_happened()
    outbox.report(happened, state.webhooks)
    due = time.monotonic() + attempts.FOLLOWER_GRACE
    for call_uuid, error in attempts.ended_legs(happened).items():
        state.attempts_due[call_uuid] = (due, error)


def apply_states(state: TenantState, received: list[StateEvent]) -> list[Extension]:
    """Store a batch of state events in order; returns the extensions that changed."""
    return apply(state, received)


def state_stream_changed(state: TenantState) -> None:
    """The state stream was lost or (re)opened: no stored line is current until it reports it
    again."""
    state.lines_current.clear()


def reconcile_calls(state: TenantState) -> list[Extension]:
    """End the legs of extensions whose current line has no call (idle or offline) since their
    last event (after the call stream reconnected: hangups may have fallen into the gap)."""
    now = timezone.now()
    changed = []
    with transaction.atomic():
        for extension in state.extensions.values():
            since = extension.line_since
            if (
                _without_call(state, extension.number)
                and since is not None
                and tracking.reconcile_idle(state.calls, extension, since)
                and tracking.show_current_call(state.calls, extension)
            ):
                changed.append(extension)
        _flush_calls(state)
        _save(state, changed, now)
    return changed


def sweep_calls(state: TenantState, grace: float) -> list[Extension]:
    """End legs on current lines without a call not heard of for ``grace`` seconds: they never
    rang a phone (while the state stream is away, nothing ends). Conclude the click-to-call
    attempts whose followers did not, and now and then give up on those nobody can conclude."""
    now_mono = time.monotonic()
    ended = {u: error for u, (due, error) in state.attempts_due.items() if due <= now_mono}
    if ended:
        with transaction.atomic():
            attempts.conclude(state.tenant_id, ended)
        for call_uuid in ended:
            del state.attempts_due[call_uuid]
    if time.monotonic() - state.attempts_checked >= ATTEMPT_CHECK_INTERVAL:
        state.attempts_checked = time.monotonic()
        with transaction.atomic():
            live = {call_uuid for call_uuid, _ in state.calls.active}
            attempts.give_up_stale(state.tenant_id, live)
    if not state.calls.active:
        return []
    quiet_since = time.monotonic() - grace
    idle = {number for _, number in state.calls.active if _without_call(state, number)}
    if not idle:
        return []
    now = timezone.now()
    changed = []
    with transaction.atomic():
        for number in sorted(idle):
            extension = state.extensions[number]
            if tracking.sweep_idle(
                state.calls, extension, quiet_since
            ) and tracking.show_current_call(state.calls, extension):
                changed.append(extension)
        _flush_calls(state)
        _save(state, changed, now)
    return changed


def _without_call(state: TenantState, number: str) -> bool:
    extension = state.extensions.get(number)
    return (
        extension is not None
        and extension.line in tracking.LINES_WITHOUT_CALL
        and number in state.lines_current
    )


def mark_unknown(state: TenantState, numbers: Iterable[str]) -> list[Extension]:
    """Extensions the bootstrap did not mention: their state is not known any more."""
    now = timezone.now()
    changed = []
    for number in numbers:
        extension = state.extensions.get(number)
        if extension is None or not extension.active:
            continue
        if extension.line != "unknown" or extension.presence != "":
            extension.line, extension.presence = "unknown", ""
            extension.line_since = extension.presence_since = now
            changed.append(extension)
    with transaction.atomic():
        _save(state, changed, now)
    return changed


def _extension(state: TenantState, number: str) -> Extension:
    extension = state.extensions.get(number)
    if extension is None:
        # Known to a stream before the extension list caught up: show it now, the next
        # extension sync fills in the name.
        extension = Extension.objects.create(tenant_id=state.tenant_id, number=number)
        state.extensions[number] = extension
    return extension


def _apply(extension: Extension, event: StateEvent, now: datetime) -> bool:
    since = event.updated or now
    changed = False
    if event.line is not None and event.line != extension.line:
        extension.line = event.line
        extension.line_since = since
        changed = True
    if event.presence is not None and event.presence != extension.presence:
        extension.presence = event.presence
        extension.presence_since = since
        changed = True
    return changed


def _save(
    state: TenantState, changed: list[Extension], now: datetime, *, events_received: bool = False
) -> None:
    """Inside the caller's transaction: stamp, write and (after commit) push ``changed``."""
    tenant_fields: dict[str, object] = {}
    if changed:
        for extension in changed:
            state.seq += 1
            extension.seq = state.seq
        update_rows(changed, LIVE_FIELDS)
        tenant_fields["event_seq"] = state.seq
        publish.extensions_changed(
            changed, _partner_contacts(state, changed), _colleagues(state, changed)
        )
    clock = time.monotonic()
    if changed or (
        events_received and clock - state.last_event_written >= LAST_EVENT_WRITE_INTERVAL
    ):
        tenant_fields["last_event_at"] = now
        state.last_event_written = clock
    if tenant_fields:
        Tenant.objects.filter(pk=state.tenant_id).update(**tenant_fields)


def _partner_contacts(state: TenantState, changed: list[Extension]) -> dict[str, Contact]:
    """Looked up once here, not by every web process for every batch: the boards show the
    name only to viewers with the call details right."""
    partners = {extension.call_partner for extension in changed if extension.call_partner}
    if not partners or state.tenant is None:
        return {}
    return lookup_contacts(state.tenant, partners)


def _colleagues(state: TenantState, changed: list[Extension]) -> dict[str, Extension]:
    """Internal partners: the boards name them to the viewers who see their tiles."""
    found = {}
    for extension in changed:
        partner = state.extensions.get(extension.call_partner)
        if partner is not None and partner.active:
            found[extension.call_partner] = partner
    return found


def set_status(
    tenant_id: int,
    status: ConnectionStatus,
    detail: str = "",
    *,
    if_status: ConnectionStatus | None = None,
) -> None:
    """Record the streams' health. ``status_since`` is when the status began (a tenant that
    keeps reconnecting keeps its first time); only a new status is pushed to the boards.
    With ``if_status``, only if that is still the stored status (not another worker's)."""
    detail = detail[:500]
    with transaction.atomic():
        tenants = Tenant.objects.filter(pk=tenant_id)
        if if_status is not None:
            tenants = tenants.filter(connection_status=if_status)
        if (
            tenants.exclude(connection_status=status).update(
                connection_status=status, status_detail=detail, status_since=timezone.now()
            )
            > 0
        ):
            tenant = Tenant.objects.only(*Tenant.STATUS_FIELDS).get(pk=tenant_id)
            publish.tenant_status_changed(tenant_id, tenant.status_payload())
        else:
            tenants.exclude(status_detail=detail).update(status_detail=detail)
