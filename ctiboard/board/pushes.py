"""A pushed batch of tile changes, decoded and rendered once per process for all its sockets.

Every socket of a tenant receives the same batch message. What each one sends differs only by
what its user may see and how (``Viewer.variant``), so the decoding of the batch and the
messages for each combination of tiles and variants are shared: a thousand sockets of equal
rights cost one decode and one render, then a dictionary lookup each.

Runs in the event loop's thread only (the consumers' handlers), hence no locks.
"""

import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.utils import timezone
from django.utils.translation import get_language

from ctiboard.contacts.models import Contact
from ctiboard.pbx.models import Extension

from .rendering import pack, render_tile_oob
from .viewer import Viewer

# Batches in flight at once per process: one per tenant, plus a few behind it.
_BATCHES_KEPT = 64
# Messages kept: per batch, one per combination of visible tiles and variants.
_MESSAGES_KEPT = 512


@dataclass(frozen=True)
class Batch:
    """One ``extensions.changed`` message of the ingest worker, decoded."""

    key: str  # the name the worker gave it ("" if none: then it is not shared)
    first: int
    last: int
    extensions: tuple[Extension, ...]
    # The call partner's phonebook entry by extension id, as the worker looked it up.
    contacts: Mapping[int, Contact]


_batches: OrderedDict[str, Batch] = OrderedDict()
_messages: OrderedDict[tuple[Any, ...], tuple[str, ...]] = OrderedDict()


def batch_of(event: Mapping[str, Any]) -> Batch:
    # A worker of the previous release names no batches, sends a list of payloads and no
    # contacts.
    key = str(event.get("batch") or "")
    batch = _batches.get(key) if key else None
    if batch is None:
        payloads = json.loads(event["tiles"]) if "tiles" in event else event["extensions"]
        seqs = [payload["seq"] for payload in payloads]
        extensions = tuple(Extension.from_payload(payload) for payload in payloads)
        contacts = {
            payload["id"]: Contact(name=found[0], vip=bool(found[1]))
            for payload in payloads
            if (found := payload.get("contact"))
        }
        batch = Batch(key, min(seqs), max(seqs), extensions, contacts)
        if key:
            _keep(_batches, key, batch, _BATCHES_KEPT)
    return batch


def tile_messages(batch: Batch, viewer: Viewer, extensions: list[Extension]) -> tuple[str, ...]:
    """The out-of-band tiles of ``extensions`` (of ``batch``) as ``viewer`` sees them, packed
    into messages."""
    key = (
        batch.key,
        viewer.tenant.account,
        viewer.tenant.crm_url_template,
        get_language(),
        timezone.localdate(),
        viewer.details,
        tuple((extension.pk, viewer.variant(extension)) for extension in extensions),
    )
    messages = _messages.get(key) if batch.key else None
    if messages is None:
        messages = tuple(
            pack(
                render_tile_oob(
                    extension,
                    viewer,
                    batch.contacts.get(extension.pk) if viewer.details else None,
                )
                for extension in extensions
            )
        )
        if batch.key:
            _keep(_messages, key, messages, _MESSAGES_KEPT)
    return messages


def _keep(cache: OrderedDict[Any, Any], key: Any, value: Any, size: int) -> None:
    cache[key] = value
    if len(cache) > size:
        cache.popitem(last=False)
