"""The tile template, rendered the same way on page load and in WebSocket pushes."""

import functools
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.template.loader import render_to_string
from django.utils import timezone, translation
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from ctiboard.calls.models import CallAttempt
from ctiboard.lib.phonenumbers import display, looks_external
from ctiboard.tenancy.models import Extension, Tenant

from .viewer import Viewer

if TYPE_CHECKING:
    from ctiboard.live.publish import PhonebookEntry

TILE = "board/board.html#tile"
# Line states in the order of "sort by status": what needs attention first.
LINE_ORDER = ("ringing", "in-use", "busy", "idle", "offline", "unknown")
# Line states with a running timer on the tile.
TIMED_LINES = frozenset({"ringing", "in-use", "busy"})
# The most a socket sends in one message. Daphne (autobahn) refuses to send a message over
# its websocket_max_message_size (1 MiB unless raised; ctiboard.lib.serve raises it) and
# closes the socket with 1011, so a large grid goes out in parts of a quarter of that: in
# characters, which is at most 1 MiB in UTF-8 even if every character took four bytes.
MESSAGE_BUDGET = 256 * 1024
# How long a finished call's result stays: it fades then, and a later reload does not bring it.
RESULT_SHOWN = timedelta(seconds=60)


def partner_number(extension: Extension, tenant: Tenant) -> tuple[str, bool]:
    """The current call partner as the board writes it (external numbers of the tenant's
    country nationally, others internationally), and whether it is external."""
    partner = extension.call_partner
    external = looks_external(partner)
    return display(partner, external=external, country_code=tenant.country_code), external


def tile_context(
    extension: Extension,
    viewer: Viewer,
    *,
    oob: bool = False,
    hidden: bool = False,
    contact: "PhonebookEntry | None" = None,
) -> dict[str, Any]:
    mine, callable_, details, favourite, may_call = viewer.variant(extension)
    context: dict[str, Any] = {
        "ext": extension,
        "mine": mine,
        "callable": callable_,
        # Why the tile's Call button does not call: "own", "offline", or "" (it calls).
        "call_off": "own" if mine else "offline" if extension.line_css == "offline" else "",
        "may_call": may_call,
        "details": details,
        "favourite": favourite,
        "oob": oob,
        "hidden": hidden,
        "rank": LINE_ORDER.index(extension.line_css),
        # The call block has the call's own timer; a line that rings or is in use without
        # a known call (the call stream lags or is down) gets one from the line state.
        "timed": extension.line_css in TIMED_LINES
        and extension.line_since is not None
        and not extension.call_state,
        "partner": None,
    }
    # Call details only for viewers with the right: without it not even the phonebook name.
    if details and extension.call_state:
        shown, external = partner_number(extension, viewer.tenant)
        context["partner"] = shown
        context["partner_name"] = contact.name if contact else ""
        context["partner_vip"] = bool(contact and contact.vip)
        context["crm_url"] = viewer.tenant.crm_url(extension.call_partner, external=external)
    return context


def tile_scope(viewer: Viewer) -> tuple[Any, ...]:
    """What a tile's cache key holds that is the same for every tile of a grid (computed once)."""
    return (
        viewer.tenant.account,
        viewer.tenant.crm_url_template,
        viewer.tenant.country_code,  # national or international numbers
        get_language(),
        timezone.localdate(),  # "since 14:03" becomes "since 27.11. 14:03" tomorrow
    )


_TILE_CACHE: OrderedDict[tuple[Any, ...], SafeString] = OrderedDict()
_TILE_CACHE_SIZE = 20_000
_TILE_CACHE_LOCK = threading.Lock()


def render_tile(
    extension: Extension,
    viewer: Viewer,
    *,
    oob: bool = False,
    hidden: bool = False,
    contact: "PhonebookEntry | None" = None,
    scope: tuple[Any, ...] | None = None,
) -> SafeString:
    """One render per (extension state, variant) per process, however many users watch.

    Page loads, grids and pushes all come through here: a board of 1,000 tiles is mostly a
    join of cached strings, and a reconnect storm after a restart renders each tile once.
    The key holds everything the tile shows (no request data: the tile has no form, its
    buttons submit the page's shared forms), so a cached tile is never out of date. ``scope`` is
    ``tile_scope(viewer)``, passed in by callers that render many tiles.
    """
    key = (
        extension.pk,
        extension.seq,
        extension.number,
        extension.name,
        extension.line,
        extension.presence,
        extension.line_since,
        extension.call_state,
        extension.call_partner,
        extension.call_direction,
        extension.call_since,
        *(scope if scope is not None else tile_scope(viewer)),
        *viewer.variant(extension),
        (contact.name, contact.vip) if contact else None,
        oob,
        hidden,
    )
    with _TILE_CACHE_LOCK:
        html = _TILE_CACHE.get(key)
        if html is not None:
            _TILE_CACHE.move_to_end(key)
            return html
    context = tile_context(extension, viewer, oob=oob, hidden=hidden, contact=contact)
    html = mark_safe(render_to_string(TILE, {"t": context}))  # noqa: S308 - our template
    with _TILE_CACHE_LOCK:
        _TILE_CACHE[key] = html
        if len(_TILE_CACHE) > _TILE_CACHE_SIZE:
            _TILE_CACHE.popitem(last=False)
    return html


def render_tile_oob(
    extension: Extension, viewer: Viewer, contact: "PhonebookEntry | None" = None
) -> str:
    return render_tile(extension, viewer, oob=True, contact=contact)


def pack(parts: Iterable[str], budget: int = MESSAGE_BUDGET) -> list[str]:
    """Out-of-band parts joined into as few messages as keep within ``budget`` each.

    Every part is a complete element with its own hx-swap-oob, so a message may end after
    any of them; a part larger than the budget goes alone.
    """
    messages: list[str] = []
    current: list[str] = []
    length = 0
    for part in parts:
        if current and length + len(part) > budget:
            messages.append("".join(current))
            current, length = [], 0
        current.append(part)
        length += len(part)
    if current:
        messages.append("".join(current))
    return messages


def render_status_oob(tenant: Tenant) -> str:
    return render_to_string("board/board.html#pbx-status", {"tenant": tenant, "oob": True})


def render_pushed_status(tenant: Tenant, status: dict[str, Any], language: str) -> str:
    """A pushed PBX status as every socket of the tenant shows it: one render per status and
    language, not one per socket (a status change reaches all of them at once)."""
    key = json.dumps(status, sort_keys=True)
    return _pushed_status(tenant.pk, tenant.account, key, language)


@functools.lru_cache(maxsize=64)
def _pushed_status(tenant_id: int, account: str, status: str, language: str) -> str:
    shown = Tenant(pk=tenant_id, account=account).with_status(json.loads(status))
    with translation.override(language or None):
        return render_status_oob(shown)


@functools.lru_cache(maxsize=64)
def render_link_oob(live: bool | None, since: float | None, language: str) -> str:
    """The link to the worker, as every socket of the tenant shows it (one render for all)."""
    moment = datetime.fromtimestamp(since, UTC) if since is not None else None
    with translation.override(language or None):
        return render_to_string(
            "board/board.html#link-status", {"link_live": live, "link_since": moment, "oob": True}
        )


@dataclass(frozen=True)
class CallNote:
    """A click-to-call as the board's call toast shows it."""

    attempt: CallAttempt
    callee: str  # "105 Anna Weber", "Anna Kundin (0351 9715048)", "+39 06 6982 1234"
    text: str  # the step it is at, or how it ended (CallAttempt.describe)
    # A finished call's toast fades at this time, and a reload after it does not show it.
    expires: datetime | None


def call_note(attempt: CallAttempt, tenant: Tenant, name: str = "") -> CallNote:
    """``name``: the callee's as the viewer may see it (calls.attempts.callee_name)."""
    external = attempt.callee_context == "global"
    number = display(attempt.callee, external=external, country_code=tenant.country_code)
    if not name:
        callee = number
    elif external:
        callee = _("%(name)s (%(number)s)") % {"name": name, "number": number}
    else:
        callee = f"{number} {name}"
    expires = attempt.updated + RESULT_SHOWN if attempt.finished and attempt.updated else None
    return CallNote(attempt, callee, attempt.describe(callee), expires)


def shows_result(attempt: CallAttempt | None) -> bool:
    """Whether a page loaded now shows this attempt: while it goes on, and its end briefly."""
    if attempt is None:
        return False
    return not attempt.finished or attempt.updated >= timezone.now() - RESULT_SHOWN


def call_status_context(
    attempt: CallAttempt | None, tenant: Tenant, name: str = "", **extra: Any
) -> dict[str, Any]:
    """What the call-status partial renders: the toast of a call and of a message."""
    return {
        "account": tenant.account,
        "note": call_note(attempt, tenant, name) if attempt is not None else None,
        **extra,
    }


def render_call_oob(attempt: CallAttempt, tenant: Tenant, partner_name: str = "") -> str:
    return render_to_string(
        "board/board.html#call-status",
        call_status_context(attempt, tenant, partner_name, oob=True),
    )
