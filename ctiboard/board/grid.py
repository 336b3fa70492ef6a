"""The grid a user asked for: search, filters, sort order, sections and display mode.

The view lives in the URL's query string (``?q=anna&line=ringing&sort=status&mode=compact``),
so it survives a reload and can be bookmarked. The server renders every tile the user may
see and marks those outside the filter ``hidden``: a pushed tile update can then move a tile
into or out of the filter in the browser (board.js applies the same rules to pushed tiles),
without asking the server for the grid again.
"""

import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from django.http import QueryDict
from django.template.loader import get_template
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ctiboard.contacts.models import Contact
from ctiboard.tenancy import states
from ctiboard.tenancy.models import Extension, ExtensionGroup, Membership

from . import partners
from .rendering import LINE_ORDER, render_tile, tile_scope
from .viewer import Viewer, visible_extensions

PRESENCE_ORDER = ("available", "away", "busy", "dnd", "offline", "null", "unknown")
SORTS = {
    "number": gettext_lazy("Number"),
    "name": gettext_lazy("Name"),
    "status": gettext_lazy("Status"),
}
MODES = {
    "": gettext_lazy("Normal"),
    "compact": gettext_lazy("Compact"),
    "wallboard": gettext_lazy("Wallboard"),
}
MAX_QUERY = 100


def line_rank(extension: Extension) -> int:
    return LINE_ORDER.index(extension.line_css)


@dataclass(frozen=True)
class BoardView:
    q: str = ""
    lines: tuple[str, ...] = ()
    presences: tuple[str, ...] = ()
    sort: str = "number"
    sections: bool = True
    mode: str = ""

    @classmethod
    def from_query(cls, query: QueryDict | str) -> "BoardView":
        """Whatever arrives in a URL: unknown values are dropped, never an error."""
        data = QueryDict(query) if isinstance(query, str) else query

        def one(key: str) -> str:
            return str(data.get(key, ""))

        lines = {value for value in data.getlist("line") if value in LINE_ORDER}
        presences = {value for value in data.getlist("presence") if value in PRESENCE_ORDER}
        sort = one("sort")
        mode = one("mode")
        return cls(
            q=" ".join(one("q").split())[:MAX_QUERY],
            lines=tuple(value for value in LINE_ORDER if value in lines),
            presences=tuple(value for value in PRESENCE_ORDER if value in presences),
            sort=sort if sort in SORTS else "number",
            sections=one("flat") != "1",
            mode=mode if mode in MODES else "",
        )

    def query_pairs(self) -> list[tuple[str, str]]:
        pairs: list[tuple[str, str]] = []
        if self.q:
            pairs.append(("q", self.q))
        pairs += [("line", value) for value in self.lines]
        pairs += [("presence", value) for value in self.presences]
        if self.sort != "number":
            pairs.append(("sort", self.sort))
        if not self.sections:
            pairs.append(("flat", "1"))
        if self.mode:
            pairs.append(("mode", self.mode))
        return pairs

    @property
    def querystring(self) -> str:
        """The view as a query string without "?"; "" for the default view."""
        return urlencode(self.query_pairs())

    def with_mode(self, mode: str) -> str:
        return replace(self, mode=mode).querystring

    @property
    def filter_count(self) -> int:
        return len(self.lines) + len(self.presences)

    def matches(self, extension: Extension) -> bool:
        # static/board/board.js applies these rules to pushed tiles too (their frames are
        # shared by every view of an audience): change both together.
        if self.lines and extension.line_css not in self.lines:
            return False
        if self.presences and extension.presence_css not in self.presences:
            return False
        if self.q:
            # lower(), not casefold(): board.js compares the same way on pushed tiles.
            needle = self.q.lower()
            if needle not in extension.number and needle not in extension.name.lower():
                return False
        return True

    def order(self, extensions: Iterable[Extension]) -> list[Extension]:
        def by_number(extension: Extension) -> tuple[int, str]:
            return (len(extension.number), extension.number)

        if self.sort == "name":
            return sorted(extensions, key=lambda e: (not e.name, e.name.casefold(), by_number(e)))
        if self.sort == "status":
            return sorted(extensions, key=lambda e: (line_rank(e), by_number(e)))
        return sorted(extensions, key=by_number)


@dataclass(slots=True)
class Tile:
    ext: Extension
    mine: bool
    hidden: bool
    contact: Contact | None
    viewer: Viewer
    # rendering.tile_scope(viewer), shared by the grid's tiles.
    scope: tuple[Any, ...]

    @property
    def html(self) -> SafeString:
        # Rendered when asked for (from the tile cache mostly): a socket that only needs the
        # tiles changed since the page's render never renders the others.
        return render_tile(
            self.ext, self.viewer, hidden=self.hidden, contact=self.contact, scope=self.scope
        )


@dataclass
class Section:
    key: str
    title: str
    tiles: list[Tile] = field(default_factory=list)
    # Rendering a page with grid_html.render_spliced: the template gets a marker here, and
    # the tiles are put in its place after the template has rendered.
    splice_mark: str = ""

    @property
    def shown(self) -> int:
        return sum(1 for tile in self.tiles if not tile.hidden)

    @property
    def html(self) -> SafeString:
        if self.splice_mark:
            return mark_safe(self.splice_mark)  # noqa: S308 - render_spliced's own marker
        return self.tiles_html()

    def tiles_html(self) -> SafeString:
        # One join instead of a template loop over thousands of tiles.
        return mark_safe("".join(tile.html for tile in self.tiles))  # noqa: S308 - tiles


@dataclass
class Grid:
    viewer: Viewer
    view: BoardView
    sections: list[Section]
    # The tenant's event_seq read before the extensions: every tile is at least this new.
    seq: int = 0

    @property
    def total(self) -> int:
        return sum(len(section.tiles) for section in self.sections)

    @property
    def shown(self) -> int:
        return sum(section.shown for section in self.sections)

    def tiles(self) -> Iterable[Tile]:
        for section in self.sections:
            yield from section.tiles

    @functools.cached_property
    def fingerprint(self) -> str:
        """Everything the grid shows except the tiles' live state, as a short hash.

        Two grids with the same fingerprint differ only in tiles whose ``seq`` differs: which
        extensions the user sees and how (own, may call, details, favourite, section, number,
        name, phonebook entry of the partner), the view, language, day, CRM link and the
        template. A socket that finds the page's fingerprint unchanged sends only the tiles
        changed since the page's ``seq`` (consumers.BoardConsumer); a rights change, a new or
        removed extension, a favourite or a new department changes it, and the socket sends
        the whole grid.
        """
        viewer = self.viewer
        layout = [
            _template_version(),
            self.view.querystring,
            *tile_scope(viewer),
            viewer.own_extension_id,
            viewer.may_call,
            viewer.details,
        ]
        for section in self.sections:
            layout.append((section.key, section.title))
            layout.append(
                sorted(
                    (
                        tile.ext.pk,
                        tile.ext.number,
                        tile.ext.name,
                        (tile.contact.name, tile.contact.vip) if tile.contact else None,
                    )
                    for tile in section.tiles
                )
            )
        return hashlib.blake2b(repr(layout).encode(), digest_size=8).hexdigest()


@functools.cache
def _template_version() -> str:
    # A deploy that changes how tiles look must not keep the old tiles of open pages.
    template: Any = get_template("board/board.html")
    source = getattr(getattr(template, "template", None), "source", "")
    return hashlib.blake2b(source.encode(), digest_size=8).hexdigest()


def section_of(membership: Membership) -> dict[int, tuple[int, str]]:
    """Each extension's department on this board: its first group by name.

    Groups the user was granted come first, so a user who watches "Sales" finds a Sales
    extension under Sales even if it is in "Management" too.
    """
    granted = set(membership.groups.values_list("pk", flat=True))
    rows = ExtensionGroup.extensions.through.objects.filter(
        extensiongroup__tenant=membership.tenant
    ).values_list("extension_id", "extensiongroup_id", "extensiongroup__name")
    best: dict[int, tuple[bool, str, int, str]] = {}
    for extension_id, group_id, name in rows:
        candidate = (group_id not in granted, name.casefold(), group_id, name)
        if extension_id not in best or candidate < best[extension_id]:
            best[extension_id] = candidate
    return {extension_id: (c[2], c[3]) for extension_id, c in best.items()}


def build_grid(user: Any, membership: Membership, view: BoardView) -> Grid:
    """Everything the grid partial renders; synchronous (the socket calls it in a thread)."""
    viewer = Viewer.of(membership)
    # Read with the membership, before the extensions: a change stored in between is in the
    # tiles and after this number at once, so a later "changed since" still includes it.
    seq = membership.tenant.event_seq
    extensions = view.order(visible_extensions(user, membership.tenant))
    # All the viewer sees: the colleagues he may see by name are among them.
    contacts = partners.on_page(viewer, extensions)
    groups = section_of(membership) if view.sections else {}
    scope = tile_scope(viewer)

    favourites = Section("favourites", _("Favourites"))
    other = Section("other", "")
    by_group: dict[int, Section] = {}
    for extension in extensions:
        tile = Tile(
            ext=extension,
            mine=extension.pk == viewer.own_extension_id,
            hidden=not view.matches(extension),
            contact=contacts.get(extension.call_partner) if extension.call_partner else None,
            viewer=viewer,
            scope=scope,
        )
        if extension.pk in viewer.favourites:
            favourites.tiles.append(tile)
        elif extension.pk in groups:
            group_id, name = groups[extension.pk]
            by_group.setdefault(group_id, Section(f"group-{group_id}", name)).tiles.append(tile)
        else:
            other.tiles.append(tile)
    ordered = sorted(by_group.values(), key=lambda section: section.title.casefold())
    if ordered or favourites.tiles:
        other.title = _("Other extensions")
    sections = [s for s in (favourites, *ordered, other) if s.tiles]
    return Grid(viewer=viewer, view=view, sections=sections, seq=seq)


def line_choices() -> list[tuple[str, str]]:
    return [(value, states.line_label(value)) for value in LINE_ORDER]


def presence_choices() -> list[tuple[str, str]]:
    return [
        (value, states.presence_label("" if value == "null" else value))
        for value in PRESENCE_ORDER
        if value != "unknown"
    ] + [("unknown", _("Unknown"))]
