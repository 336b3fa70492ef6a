"""Database writes of the ingest worker. Synchronous; the worker calls them in a thread.

Each function is one transaction and idempotent: applying the same state twice changes
nothing and pushes nothing.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from ctiboard.cti.events import ExtensionData, StateEvent

from . import events
from .models import ConnectionStatus, Extension, Tenant

logger = logging.getLogger(__name__)


@dataclass
class TenantState:
    """The worker's copy of what is stored for one tenant (it is the only writer)."""

    tenant_id: int
    account: str
    seq: int
    extensions: dict[str, Extension] = field(default_factory=dict)


def load_state(tenant_id: int) -> TenantState:
    tenant = Tenant.objects.get(pk=tenant_id)
    state = TenantState(tenant_id=tenant.pk, account=tenant.account, seq=tenant.event_seq)
    for extension in Extension.objects.filter(tenant=tenant):
        state.extensions[extension.number] = extension
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
            events.extensions_changed(changed)


def _stamp(state: TenantState, changed: list[Extension]) -> None:
    for extension in changed:
        state.seq += 1
        extension.seq = state.seq
    Extension.objects.bulk_update(changed, ["seq"])
    Tenant.objects.filter(pk=state.tenant_id).update(event_seq=state.seq)


def apply_states(state: TenantState, received: list[StateEvent]) -> list[Extension]:
    """Store a batch of state events in order; returns the extensions that changed."""
    now = timezone.now()
    changed: dict[str, Extension] = {}
    created: list[Extension] = []
    for event in received:
        if event.customer and event.customer != state.account:
            logger.warning(
                "%s: ignored state of extension %s for foreign customer %s",
                state.account,
                event.extension,
                event.customer,
            )
            continue
        extension = state.extensions.get(event.extension)
        if extension is None:
            # Known to the state stream before the extension list caught up: show it now,
            # the next extension sync fills in the name.
            extension = Extension(tenant_id=state.tenant_id, number=event.extension)
            state.extensions[event.extension] = extension
            created.append(extension)
        if _apply(extension, event, now):
            changed[extension.number] = extension
    return _save(state, created, list(changed.values()), now)


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
    return _save(state, [], changed, now)


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
    state: TenantState, created: list[Extension], changed: list[Extension], now: datetime
) -> list[Extension]:
    with transaction.atomic():
        for extension in created:
            if extension.pk is None:
                extension.save()
        if changed:
            for extension in changed:
                state.seq += 1
                extension.seq = state.seq
            Extension.objects.bulk_update(
                changed, ["line", "presence", "line_since", "presence_since", "seq"]
            )
            Tenant.objects.filter(pk=state.tenant_id).update(event_seq=state.seq, last_event_at=now)
            events.extensions_changed(changed)
    return changed


def set_status(tenant_id: int, status: ConnectionStatus, detail: str = "") -> None:
    """Record the stream's health; only real changes are written and pushed."""
    with transaction.atomic():
        updated = (
            Tenant.objects.filter(pk=tenant_id)
            .exclude(connection_status=status, status_detail=detail[:500])
            .update(
                connection_status=status, status_detail=detail[:500], status_since=timezone.now()
            )
        )
        if updated:
            events.tenant_status_changed(tenant_id)
