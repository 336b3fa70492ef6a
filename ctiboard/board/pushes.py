"""A pushed batch of tile changes (``live.batches``), rendered once per audience.

Every socket of a tenant receives the same batch. What each one sends differs only by what
its user may see and how: sockets with the same ``Audience`` (the same shared id sets, rights,
own extension, favourites and language) send the same frames, so a batch costs one decode,
one render per audience, and per socket a dictionary lookup and a write.

Runs in the event loop's thread only (the fan-out's reader), hence no locks.
"""

from dataclasses import dataclass, field

from django.utils import translation

from ctiboard.contacts.models import Contact
from ctiboard.lib.wsframes import Frame
from ctiboard.live.batches import Batch, Partner
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


def frames_for(batch: Batch, audience: Audience, viewer: Viewer) -> "tuple[Frame, ...] | Resync":
    """The batch's frames for a socket of ``audience``, rendered once per audience."""
    found = batch.renders.get(audience)
    if found is None:
        found = batch.renders[audience] = changes_for(batch.extensions, batch, audience, viewer)
    assert isinstance(found, tuple | Resync)
    return found


def partner_of(
    batch: Batch, extension_id: int, viewer: Viewer, visible: frozenset[int]
) -> "Contact | Partner | None":
    """A pushed tile's partner entry for an audience that sees the tiles ``visible``."""
    return partners.pushed(
        viewer, visible, batch.contacts.get(extension_id), batch.colleagues.get(extension_id)
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
            render_tile_oob(e, viewer, partner_of(batch, e.pk, viewer, audience.visible))
            for e in changed
        )
    return tuple(Frame(message) for message in messages)
