"""The user's own phone ringing: what the banner, the notification and the ring tone say."""

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ctiboard.tenancy.models import Extension

from .rendering import partner_number
from .viewer import Viewer

if TYPE_CHECKING:
    from ctiboard.live.publish import PhonebookEntry


@dataclass(frozen=True)
class Ring:
    # Changes with every new call, so the browser notifies once per call, not per message.
    key: str
    state: str  # "ringing" or "answered"
    number: str  # as shown; "" when unknown or when the user may not see call details
    name: str
    vip: bool
    kind: str  # ring tone: "internal", "external", "vip" or "unknown"
    crm_url: str


def ring_of(
    extension: Extension | None, viewer: Viewer, contact: "PhonebookEntry | None"
) -> Ring | None:
    """The incoming call on the viewer's own extension, if it rings or was answered."""
    if extension is None or extension.pk != viewer.own_extension_id:
        return None
    if extension.call_state and extension.call_direction == "inbound":
        state = "ringing" if extension.call_state == "ringing" else "answered"
        started = extension.call_since or extension.line_since
    elif not extension.call_state and extension.line == "ringing":
        # The line rings but the call stream has not told who calls (yet).
        state, started = "ringing", extension.line_since
    else:
        return None
    key = f"{extension.pk}-{started.isoformat() if started else extension.seq}"
    if not viewer.details or not extension.call_partner:
        return Ring(key, state, "", "", False, "unknown", "")
    shown, external = partner_number(extension, viewer.tenant)
    vip = bool(contact and contact.vip)
    kind = "vip" if vip else "external" if external else "internal"
    return Ring(
        key=key,
        state=state,
        number=shown,
        name=contact.name if contact else "",
        vip=vip,
        kind=kind,
        crm_url=viewer.tenant.crm_url(extension.call_partner, external=external),
    )
