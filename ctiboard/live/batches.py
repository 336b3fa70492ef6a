"""A pushed batch of extension changes (``publish.extensions_changed``), decoded once per web
process and handed by the fan-out to every subscriber of the tenant: the board's sockets and
the gateway's streams. What a subscriber derives from a batch (frames per audience) it keeps in
the batch's ``renders``, so subscribers of equal rights derive it once."""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ctiboard.tenancy.models import Extension


@dataclass(frozen=True)
class Partner:
    """A call partner's phonebook entry as the worker looked it up (``publish.PhonebookEntry``)."""

    name: str
    vip: bool


@dataclass(frozen=True)
class Batch:
    """One ``extensions.changed`` message of the ingest worker, decoded."""

    first: int
    last: int
    extensions: tuple[Extension, ...]
    # The call partner's phonebook entry by extension id, as the worker looked it up.
    contacts: Mapping[int, Partner]
    # An internal call partner's (extension id, name) by extension id: named only to viewers
    # who see his tile (board.partners.pushed).
    colleagues: Mapping[int, tuple[int, str]] = field(default_factory=dict)
    ids: frozenset[int] = field(default=frozenset(), compare=False, repr=False)
    # What subscribers derived from this batch, by a key of their own (e.g. their audience):
    # every subscriber of the process sees the same batch, so each result is made once.
    renders: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)


def batch_of(event: Mapping[str, Any]) -> Batch:
    # A worker of the previous release sends a list of payloads and no contacts.
    payloads = json.loads(event["tiles"]) if "tiles" in event else event["extensions"]
    seqs = [payload["seq"] for payload in payloads]
    extensions = tuple(Extension.from_payload(payload) for payload in payloads)
    contacts = {
        payload["id"]: Partner(name=found[0], vip=bool(found[1]))
        for payload in payloads
        if (found := payload.get("contact"))
    }
    colleagues = {
        payload["id"]: (int(found[0]), str(found[1]))
        for payload in payloads
        if (found := payload.get("colleague"))
    }
    return Batch(
        min(seqs),
        max(seqs),
        extensions,
        contacts,
        colleagues,
        ids=frozenset(e.pk for e in extensions),
    )


def merge(batches: list[Batch]) -> Batch:
    """Consecutive batches as one: each extension in its latest state, with the partner of
    that state (an earlier call's partner must not stay on the tile)."""
    if len(batches) == 1:
        return batches[0]
    latest: dict[int, Extension] = {}
    contacts: dict[int, Partner] = {}
    colleagues: dict[int, tuple[int, str]] = {}
    for batch in batches:
        for extension in batch.extensions:
            latest.pop(extension.pk, None)
            latest[extension.pk] = extension
            contacts.pop(extension.pk, None)
            if extension.pk in batch.contacts:
                contacts[extension.pk] = batch.contacts[extension.pk]
            colleagues.pop(extension.pk, None)
            if extension.pk in batch.colleagues:
                colleagues[extension.pk] = batch.colleagues[extension.pk]
    return Batch(
        batches[0].first,
        batches[-1].last,
        tuple(latest.values()),
        contacts,
        colleagues,
        ids=frozenset(latest),
    )
