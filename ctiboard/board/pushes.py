"""A pushed batch of tile changes, decoded once per process and rendered once per audience.

Every socket of a tenant receives the same batch. What each one sends differs only by what
its user may see and how: sockets with the same ``Audience`` (the same shared id sets, rights,
own extension, favourites and language) send the same frames, so a batch costs one decode,
one render per audience, and per socket a dictionary lookup and a write.

Runs in the event loop's thread only (the fan-out's reader), hence no locks.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.utils import translation

from ctiboard.contacts.models import Contact
from ctiboard.lib.wsframes import Frame
from ctiboard.tenancy.models import Extension

from . import partners
from .rendering import pack, render_tile_oob
from .viewer import Viewer


@dataclass(frozen=True)
class Audience:
    """Everything a batch's frames depend on besides the batch. Hashable; sockets of equal
    rights share the frozensets (``consumers.shared_ids``), so equality is mostly identity."""

    known: frozenset[int]
    inactive: frozenset[int]
    visible: frozenset[int]
    account: str
    crm_url_template: str
    country_code: str
    own_extension_id: int | None
    may_call: bool
    details: bool
    favourites: frozenset[int]
    language: str
    # Every socket looks its audience up in every batch: hashing the ten fields each time was
    # 4 % of a web process with 2,000 sockets.
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fields = (
            self.known,
            self.inactive,
            self.visible,
            self.account,
            self.crm_url_template,
            self.country_code,
        )
        rights = (self.own_extension_id, self.may_call, self.details, self.favourites)
        object.__setattr__(self, "_hash", hash((*fields, *rights, self.language)))

    def __hash__(self) -> int:
        return self._hash

    @classmethod
    def of(
        cls,
        viewer: Viewer,
        *,
        known: frozenset[int],
        inactive: frozenset[int],
        visible: frozenset[int],
        language: str,
    ) -> "Audience":
        return cls(
            known=known,
            inactive=inactive,
            visible=visible,
            account=viewer.tenant.account,
            crm_url_template=viewer.tenant.crm_url_template,
            country_code=viewer.tenant.country_code,
            own_extension_id=viewer.own_extension_id,
            may_call=viewer.may_call,
            details=viewer.details,
            favourites=viewer.favourites,
            language=language,
        )


class Resync:
    """The batch tells a socket that more than its tiles changed: it must send the whole
    grid (an extension it does not know, one that came back or one that went away)."""


RESYNC = Resync()


@dataclass(frozen=True)
class Batch:
    """One ``extensions.changed`` message of the ingest worker, decoded."""

    first: int
    last: int
    extensions: tuple[Extension, ...]
    # The call partner's phonebook entry by extension id, as the worker looked it up.
    contacts: Mapping[int, Contact]
    # An internal call partner's (extension id, name) by extension id: named to audiences
    # that see his tile (partners.pushed).
    colleagues: Mapping[int, tuple[int, str]] = field(default_factory=dict)
    # The batch's frames by audience, filled as sockets ask.
    frames: dict[Audience, "tuple[Frame, ...] | Resync"] = field(
        default_factory=dict, compare=False, repr=False
    )
    ids: frozenset[int] = field(default=frozenset(), compare=False, repr=False)
    # Frames with the own phone's banner (consumers.BoardConsumer._with_ring), by the frames
    # without it, the ring and the language: every socket of a user whose phone rings needs
    # the same ones, and each new Frame is deflated anew.
    with_banner: dict[tuple[Any, ...], "tuple[Frame, ...]"] = field(
        default_factory=dict, compare=False, repr=False
    )

    def partner_of(
        self, extension_id: int, viewer: Viewer, visible: frozenset[int]
    ) -> Contact | None:
        """The tile's partner entry for an audience that sees the tiles ``visible``."""
        return partners.pushed(
            viewer, visible, self.contacts.get(extension_id), self.colleagues.get(extension_id)
        )

    def frames_for(self, audience: Audience, viewer: Viewer) -> "tuple[Frame, ...] | Resync":
        found = self.frames.get(audience)
        if found is None:
            found = self.frames[audience] = changes_for(self.extensions, self, audience, viewer)
        return found


def batch_of(event: Mapping[str, Any]) -> Batch:
    # A worker of the previous release sends a list of payloads and no contacts.
    payloads = json.loads(event["tiles"]) if "tiles" in event else event["extensions"]
    seqs = [payload["seq"] for payload in payloads]
    extensions = tuple(Extension.from_payload(payload) for payload in payloads)
    contacts = {
        payload["id"]: Contact(name=found[0], vip=bool(found[1]))
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
    contacts: dict[int, Contact] = {}
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


def changes_for(
    extensions: tuple[Extension, ...] | list[Extension],
    batch: Batch,
    audience: Audience,
    viewer: Viewer,
) -> "tuple[Frame, ...] | Resync":
    """What a socket of ``audience`` sends for these extensions of ``batch``."""
    if any(
        e.pk not in audience.known or (e.active and e.pk in audience.inactive) for e in extensions
    ):
        return RESYNC
    changed = [e for e in extensions if e.pk in audience.visible]
    if not changed:
        return ()
    if not all(extension.active for extension in changed):
        # A tile goes away: the whole grid, sections and counts included.
        return RESYNC
    with translation.override(audience.language):
        messages = pack(
            render_tile_oob(e, viewer, batch.partner_of(e.pk, viewer, audience.visible))
            for e in changed
        )
    return tuple(Frame(message) for message in messages)
