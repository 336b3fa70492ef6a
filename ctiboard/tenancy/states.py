"""What the board says about a line or a presence value, including values NFON never documented."""

from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from ctiboard.cti.events import LINE_STATES, PRESENCES

LINE_LABELS = {
    "idle": _("Free"),
    "ringing": _("Ringing"),
    "in-use": _("On a call"),
    # Real NFON sends `busy` for a line in a call, though the spec lists only `in-use`.
    "busy": pgettext_lazy("line", "Busy"),
    "offline": _("Offline"),
    "unknown": _("Unknown"),
}
PRESENCE_LABELS = {
    "available": _("Available"),
    "away": _("Away"),
    "busy": pgettext_lazy("presence", "Busy"),
    "dnd": _("Do not disturb"),
    "offline": _("Offline"),
    "null": _("No presence"),
}
assert set(LINE_LABELS) == LINE_STATES and set(PRESENCE_LABELS) == PRESENCES


def line_label(value: str) -> str:
    if value in LINE_LABELS:
        return str(LINE_LABELS[value])
    return str(_("Unknown (%(value)s)") % {"value": value})


def presence_label(value: str) -> str:
    if not value:
        return str(PRESENCE_LABELS["null"])
    if value in PRESENCE_LABELS:
        return str(PRESENCE_LABELS[value])
    return str(_("Unknown (%(value)s)") % {"value": value})


def css_token(value: str, known: frozenset[str]) -> str:
    """A class-name-safe token: documented values keep their name, others become 'unknown'."""
    return value if value in known else "unknown"
