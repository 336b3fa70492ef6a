"""Everything the board learns live goes out from here, after the database has committed.

Recipients are explicit: extension changes go to the tenant's group and each socket keeps
only what ``Extension.objects.visible_to`` lets its user see; call progress and permission
changes go to the one user they concern. Each message carries what the sockets show (ids and
plain data): a socket renders it without reading the database.
"""

import json
import logging
import secrets
from collections.abc import Mapping
from typing import Any, Protocol

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from ctiboard.lib.metrics import SENT_AT, stamp
from ctiboard.lib.outage import Outage
from ctiboard.tenancy.models import Extension

from .groups import api_token_group, ingest_group, tenant_group, user_group

logger = logging.getLogger(__name__)

# The worker says every PULSE_INTERVAL seconds, per tenant it streams, where the tenant is
# (its newest sequence number and its PBX status). A web process that hears nothing of a
# tenant for PULSE_TIMEOUT marks its boards stale: the worker died, or the channel layer is
# down. The pulse after a silence, or after a lost batch, brings every socket up to date.
# 2.5 s: a worker killed right after a pulse shows within 3 s (with the fan-out's watch and
# the push), and a pulse may still be 1.5 s late without a false alarm.
PULSE_INTERVAL = 1.0
PULSE_TIMEOUT = 2.5
# Sends that fail (the channel layer is down): one warning, then a summary now and then.
layer_outage = Outage(logger, "the channel layer")


class PhonebookEntry(Protocol):
    """What a tile shows of a call partner's phonebook entry (contacts.Contact has it)."""

    @property
    def name(self) -> str: ...

    @property
    def vip(self) -> bool: ...


def _send_after_commit(group: str, message: dict[str, Any]) -> None:
    def send() -> None:
        layer = get_channel_layer()
        if layer is None:
            return
        try:
            async_to_sync(layer.group_send)(group, {**message, SENT_AT: stamp()})
        except Exception as exc:  # what is stored stays stored; the next pulse repairs boards
            layer_outage.failed(exc)
        else:
            layer_outage.recovered()

    transaction.on_commit(send)


async def tenant_pulse(
    tenant_id: int, seq: int, status: dict[str, Any], held_since: float | None = None
) -> None:
    """From the worker streaming the tenant, every PULSE_INTERVAL: see above. ``status`` is
    ``Tenant.status_payload()``. Sent at once: it says what is committed already.
    ``held_since``: the worker cannot store what the PBX says (its database is away) since
    this wall-clock time; the boards are behind the PBX, as with no pulse at all."""
    layer = get_channel_layer()
    if layer is None:
        return
    message = {
        "type": "tenant.pulse",
        "tenant_id": tenant_id,
        "seq": seq,
        "status": status,
        "held_since": held_since,
        SENT_AT: stamp(),
    }
    try:
        await layer.group_send(tenant_group(tenant_id), message)
    except Exception as exc:
        layer_outage.failed(exc)
    else:
        layer_outage.recovered()


def extensions_changed(
    extensions: list[Extension],
    contacts: Mapping[str, PhonebookEntry] | None = None,
    colleagues: Mapping[str, Extension] | None = None,
) -> None:
    """Tiles of these extensions must be redrawn on every socket that may see them.

    ``contacts``: phonebook entries of their call partners by number; ``colleagues``: the
    partners that are extensions of the tenant, by number. The sockets show them only to
    viewers with the call details right, a colleague's name only to those who see his tile."""
    by_tenant: dict[int, list[dict[str, Any]]] = {}
    for extension in extensions:
        payload = extension.to_payload()
        contact = contacts.get(extension.call_partner) if contacts else None
        if contact is not None:
            payload["contact"] = [contact.name, contact.vip]
        partner = colleagues.get(extension.call_partner) if colleagues else None
        if partner is not None:
            payload["colleague"] = [partner.pk, partner.name]
        by_tenant.setdefault(extension.tenant_id, []).append(payload)
    for tenant_id, payloads in by_tenant.items():
        # Named, so that web processes decode and render it once for all their sockets; as
        # one JSON string, which the in-memory layer's copy per socket does not have to copy.
        _send_after_commit(
            tenant_group(tenant_id),
            {
                "type": "extensions.changed",
                "batch": secrets.token_hex(8),
                "tiles": json.dumps(payloads, separators=(",", ":")),
            },
        )


# What of a call event the gateway passes on: the fields of NFON's `call` schema.
CALL_FIELDS = (
    "uuid",
    "caller",
    "caller_context",
    "callee",
    "callee_context",
    "state",
    "updated",
    "extension",
    "customer",
    "direction",
    "error",
)


def calls_reported(tenant_id: int, events: list[dict[str, Any]]) -> None:
    """Call events as the PBX sent them (their raw objects), for the gateway's call streams;
    each stream keeps the events of extensions its user may see."""
    if events:
        _send_after_commit(
            tenant_group(tenant_id),
            {
                "type": "calls.reported",
                "events": [
                    {key: event[key] for key in CALL_FIELDS if key in event} for event in events
                ],
            },
        )


def api_token_changed(token_id: int) -> None:
    """An API token was revoked, changed or deleted: its open gateway streams check it again."""
    _send_after_commit(api_token_group(token_id), {"type": "api_token.changed"})


def resync_requested(tenant_id: int) -> None:
    """Ask the worker streaming this tenant to re-sync its extension list now."""
    _send_after_commit(ingest_group(tenant_id), {"type": "ingest.resync", "tenant_id": tenant_id})


def tenant_status_changed(tenant_id: int, status: dict[str, Any]) -> None:
    """The tenant's PBX status pill changed; ``status`` is ``Tenant.status_payload()``."""
    _send_after_commit(
        tenant_group(tenant_id),
        {"type": "tenant.status", "tenant_id": tenant_id, "status": status},
    )


def visibility_changed(user_id: int) -> None:
    """The user's rights changed: his open sockets recompute what they show."""
    _send_after_commit(user_group(user_id), {"type": "visibility.changed"})


def call_progress(
    user_id: int, tenant_id: int, attempt: dict[str, Any], partner_name: str = ""
) -> None:
    """A click-to-call of this user went on; ``attempt`` is ``CallAttempt.to_payload()``,
    ``partner_name`` the callee's name: a colleague's (the user sees his tile), or the phonebook's
    for a number (shown only with the call details right)."""
    _send_after_commit(
        user_group(user_id),
        {
            "type": "call.progress",
            "tenant_id": tenant_id,
            "attempt": attempt,
            "partner_name": partner_name,
        },
    )


# A board socket knows its login session by ``live.sessions.digest`` of its key; each ended
# session closes its sockets as signed out (live.session_ends decides which).
def session_ended(user_id: int, session: str) -> None:
    """The session with this digest ended (logout, deleted, expired)."""
    _send_after_commit(user_group(user_id), {"type": "session.ended", "session": session})


def sessions_ended(user_id: int, keep: list[str] | None = None) -> None:
    """Every session of the user ended (password changed, deactivated) but those whose
    digests are in ``keep``."""
    _send_after_commit(user_group(user_id), {"type": "sessions.ended", "keep": keep or []})


def session_replaced(user_id: int, session: str, sealed_key: str) -> None:
    """The session with this digest lives on under a new key (``live.sessions.seal``-ed)."""
    _send_after_commit(
        user_group(user_id), {"type": "session.replaced", "session": session, "key": sealed_key}
    )
