"""Who a tile's call partner is: a colleague by name, a phonebook entry, or a bare number.

An internal partner is named like his own tile names him, but only to viewers who see that
tile (``Extension.objects.visible_to``): a colleague outside the viewer's board stays a
number. A phonebook entry names any other number. Both are call details: a viewer without
that right sees no partner at all (``rendering.tile_context``, ``ringing.ring_of``).
"""

from collections.abc import Collection, Iterable

from ctiboard.contacts.models import Contact
from ctiboard.contacts.models import lookup as lookup_contacts
from ctiboard.live.batches import Partner
from ctiboard.tenancy.models import Extension

from .viewer import Viewer


def colleague(name: str, contact: Contact | Partner | None) -> Contact:
    """A colleague's entry as a tile shows it: his extension's name; VIP as the phonebook
    says (an unsaved Contact, like the phonebook entries a pushed batch carries)."""
    return Contact(name=name, vip=bool(contact and contact.vip))


def on_page(viewer: Viewer, extensions: Iterable[Extension]) -> dict[str, Contact]:
    """The partners' entries for these tiles, by partner number; ``extensions`` are all the
    viewer sees (``viewer.visible_extensions``): the colleagues he may see are among them."""
    if not viewer.details:
        return {}
    extensions = list(extensions)
    by_number = {e.number: e for e in extensions}
    partners = {e.call_partner for e in extensions if e.call_partner}
    found: dict[str, Contact] = dict(lookup_contacts(viewer.tenant, partners))
    for number in partners:
        partner = by_number.get(number)
        if partner is not None and partner.name:
            found[number] = colleague(partner.name, found.get(number))
    return found


def pushed(
    viewer: Viewer,
    visible: Collection[int],
    contact: Contact | Partner | None,
    partner: tuple[int, str] | None,
) -> Contact | Partner | None:
    """A pushed tile's partner entry for one audience: ``partner`` is the (extension id, name)
    of an internal partner as the worker found it, ``visible`` the audience's tile ids."""
    if not viewer.details:
        return None
    if partner is not None and partner[1] and partner[0] in visible:
        return colleague(partner[1], contact)
    return contact
