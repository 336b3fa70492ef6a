"""Everything the board learns live goes out from here, after the database has committed.

Recipients are explicit: extension changes go to the tenant's group and each socket keeps
only what ``Extension.objects.visible_to`` lets its user see; call progress and permission
changes go to the one user they concern.
"""

import json
import secrets
from collections.abc import Mapping
from datetime import datetime
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING, Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from ctiboard.ops.metrics import SENT_AT, stamp

from .models import CallAttempt, Extension

if TYPE_CHECKING:
    from ctiboard.contacts.models import Contact


def tenant_group(tenant_id: int) -> str:
    return f"tenant.{tenant_id}"


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def ingest_group(tenant_id: int) -> str:
    """Joined by the ingest worker while it streams the tenant (whichever worker holds it)."""
    return f"ingest.{tenant_id}"


def _send_after_commit(group: str, message: dict[str, Any]) -> None:
    def send() -> None:
        layer = get_channel_layer()
        if layer is not None:
            async_to_sync(layer.group_send)(group, {**message, SENT_AT: stamp()})

    transaction.on_commit(send, robust=True)


def extensions_changed(
    extensions: list[Extension], contacts: Mapping[str, "Contact"] | None = None
) -> None:
    """Tiles of these extensions must be redrawn on every socket that may see them.

    ``contacts``: phonebook entries of their call partners by number; the sockets show them
    only to viewers with the call details right."""
    by_tenant: dict[int, list[str]] = {}
    for extension in extensions:
        contact = contacts.get(extension.call_partner) if contacts else None
        by_tenant.setdefault(extension.tenant_id, []).append(tile_json(extension, contact))
    for tenant_id, tiles in by_tenant.items():
        # Named, so that web processes decode and render it once for all their sockets; as
        # one JSON string, which the in-memory layer's copy per socket does not have to copy.
        _send_after_commit(
            tenant_group(tenant_id),
            {
                "type": "extensions.changed",
                "batch": secrets.token_hex(8),
                "tiles": f"[{','.join(tiles)}]",
            },
        )


# Extension.to_payload (plus the contact) as json.dumps(..., separators=(",", ":")) writes it,
# filled in by % from the values encoded one by one: the dictionary and the encoder's walk
# through it were a fifth of the ingest worker's CPU. Values of other types than these, which
# the template would encode differently or not at all, take the dictionary and json.dumps.
_TILE = (
    '{"id":%d,"tenant_id":%d,"number":%s,"name":%s,"line":%s,"presence":%s,'
    '"line_since":%s,"presence_since":%s,"call_state":%s,"call_partner":%s,'
    '"call_direction":%s,"call_since":%s,"seq":%d,"active":%s'
)
_string = encode_basestring_ascii  # json.dumps's own (ensure_ascii), in C; TypeError if no str


def tile_json(extension: Extension, contact: "Contact | None" = None) -> str:
    """One tile's payload as JSON, exactly as ``json.dumps`` encodes ``to_payload()``."""
    pk, tenant_id, seq, active = extension.pk, extension.tenant_id, extension.seq, extension.active
    line_since, presence_since = extension.line_since, extension.presence_since
    call_since = extension.call_since
    if (
        type(pk) is int
        and type(tenant_id) is int
        and type(seq) is int
        and type(active) is bool
        and (line_since is None or type(line_since) is datetime)
        and (presence_since is None or type(presence_since) is datetime)
        and (call_since is None or type(call_since) is datetime)
    ):
        try:
            text = _TILE % (
                pk,
                tenant_id,
                _string(extension.number),
                _string(extension.name),
                _string(extension.line),
                _string(extension.presence),
                f'"{line_since.isoformat()}"' if line_since else "null",
                f'"{presence_since.isoformat()}"' if presence_since else "null",
                _string(extension.call_state),
                _string(extension.call_partner),
                _string(extension.call_direction),
                f'"{call_since.isoformat()}"' if call_since else "null",
                seq,
                "true" if active else "false",
            )
        except TypeError:
            pass  # a value that is not a str where one is expected
        else:
            if contact is None:
                return text + "}"
            return f'{text},"contact":{_compact([contact.name, contact.vip])}}}'
    payload = extension.to_payload()
    if contact is not None:
        payload["contact"] = [contact.name, contact.vip]
    return _compact(payload)


def _compact(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def resync_requested(tenant_id: int) -> None:
    """Ask the worker streaming this tenant to re-sync its extension list now."""
    _send_after_commit(ingest_group(tenant_id), {"type": "ingest.resync", "tenant_id": tenant_id})


def tenant_status_changed(tenant_id: int) -> None:
    _send_after_commit(tenant_group(tenant_id), {"type": "tenant.status", "tenant_id": tenant_id})


def visibility_changed(user_id: int) -> None:
    """The user's rights changed: his open sockets recompute what they show."""
    _send_after_commit(user_group(user_id), {"type": "visibility.changed"})


def call_progress(attempt: CallAttempt) -> None:
    if attempt.user_id is None:
        return
    _send_after_commit(
        user_group(attempt.user_id), {"type": "call.progress", "attempt_id": attempt.pk}
    )
