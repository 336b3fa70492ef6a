"""The grid as HTML: the page with its tiles spliced in, and the socket messages of a whole grid."""

import re
from collections.abc import Iterable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe

from .grid import Grid
from .rendering import MESSAGE_BUDGET, pack

# Escaped text can hold no "<", so only a Section in a spliced render writes this.
_SPLICE_MARK = re.compile(r"<!--ctiboard-tiles (\d+)-->")


def render_spliced(
    request: HttpRequest, template_name: str, context: dict[str, Any], grid: Grid
) -> HttpResponse:
    """``render(request, template_name, context)`` for a page or partial holding ``grid``,
    with the grid's tiles put into the response after the template has rendered.

    Each block, partial and loop of a Django template joins what its children rendered into
    a new string: the tiles of a large board were copied once per level on the way up (a
    5,000-tile page is 4.4 MB). Here the template renders a marker for each section's tiles,
    and the response is the page's parts and the sections' tiles, each encoded once and joined
    once.
    """
    for index, section in enumerate(grid.sections):
        section.splice_mark = f"<!--ctiboard-tiles {index}-->"
    try:
        page = render_to_string(template_name, context, request)
    finally:
        for section in grid.sections:
            section.splice_mark = ""
    # split() alternates: page text, a section's index, page text, ...
    parts = _SPLICE_MARK.split(page)
    chunks = (
        grid.sections[int(part)].tiles_html() if index % 2 else part
        for index, part in enumerate(parts)
    )
    return HttpResponse(chunk.encode() for chunk in chunks)


def grid_context(grid: Grid) -> dict[str, Any]:
    return {"grid": grid, "view": grid.view, "account": grid.viewer.tenant.account}


def render_grid_oob(grid: Grid, *, skeleton: bool = False) -> str:
    return render_to_string(
        "board/board.html#grid", {**grid_context(grid), "oob": True, "skeleton": skeleton}
    )


def render_grid_version_oob(grid: Grid) -> str:
    return render_to_string("board/board.html#grid-version", {"grid": grid, "version_oob": True})


def render_grid_messages(grid: Grid, tail: Iterable[str] = ()) -> list[str]:
    """The whole grid as socket messages of at most MESSAGE_BUDGET characters, then ``tail``.

    A grid that fits goes as one message, as it always did. A larger one goes as its
    skeleton (sections, titles, counts, hidden flags; no tiles), then its tiles appended to
    their sections in order in runs, and last its #grid-version, packed (``pack``) into as
    few messages as fit: the skeleton may share a message with the first run. The browser
    ends up with the same DOM as from one message, and a socket cut in between leaves no
    version behind, so the reconnect sends the whole grid again.
    """
    tail = list(tail)
    size = sum(len(tile.html) for section in grid.sections for tile in section.tiles)
    if size + sum(map(len, tail)) < MESSAGE_BUDGET * 3 // 4:
        return ["".join([render_grid_oob(grid), *tail])]
    parts = [render_grid_oob(grid, skeleton=True)]
    for section in grid.sections:
        run: list[str] = []
        length = 0
        for tile in section.tiles:
            html = tile.html
            if run and length + len(html) > MESSAGE_BUDGET - 200:
                parts.append(_tiles_chunk(section.key, run))
                run, length = [], 0
            run.append(html)
            length += len(html)
        if run:
            parts.append(_tiles_chunk(section.key, run))
    return pack([*parts, render_grid_version_oob(grid), *tail])


def _tiles_chunk(section_key: str, tiles: list[str]) -> str:
    return render_to_string(
        "board/board.html#tiles-chunk",
        {"section_key": section_key, "tiles_html": mark_safe("".join(tiles))},  # noqa: S308
    )
