"""The tile template, rendered the same way on page load and in WebSocket pushes."""

from collections import OrderedDict
from typing import Any

from django.template.loader import render_to_string
from django.utils.translation import get_language

from ctiboard.pbx.models import CallAttempt, Extension, Tenant

from .viewer import Viewer

TILE = "board/board.html#tile"


def tile_context(extension: Extension, viewer: Viewer, *, oob: bool = False) -> dict[str, Any]:
    mine, callable_, details = viewer.variant(extension)
    return {
        "ext": extension,
        "mine": mine,
        "callable": callable_,
        "details": details,
        "account": viewer.tenant.account,
        "oob": oob,
    }


_TILE_CACHE: OrderedDict[tuple[Any, ...], str] = OrderedDict()
_TILE_CACHE_SIZE = 8192


def render_tile_oob(extension: Extension, viewer: Viewer) -> str:
    """One render per (extension state, variant) per process, however many sockets watch.

    The key holds everything the tile shows: the state is identified by its sequence number.
    """
    key = (
        extension.pk,
        extension.seq,
        viewer.tenant.account,
        get_language(),
        *viewer.variant(extension),
    )
    html = _TILE_CACHE.get(key)
    if html is None:
        html = render_to_string(TILE, {"t": tile_context(extension, viewer, oob=True)})
        _TILE_CACHE[key] = html
        if len(_TILE_CACHE) > _TILE_CACHE_SIZE:
            _TILE_CACHE.popitem(last=False)
    return html


def render_grid_oob(extensions: list[Extension], viewer: Viewer) -> str:
    return render_to_string(
        "board/board.html#grid",
        {
            "tiles": [tile_context(extension, viewer) for extension in extensions],
            "oob": True,
        },
    )


def render_status_oob(tenant: Tenant) -> str:
    return render_to_string("board/board.html#pbx-status", {"tenant": tenant, "oob": True})


def render_call_oob(attempt: CallAttempt, account: str) -> str:
    return render_to_string(
        "board/board.html#call-status", {"attempt": attempt, "account": account, "oob": True}
    )
