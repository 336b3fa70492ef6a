"""Search, filters, sort, departments, favourites and display modes of the grid."""

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from ctiboard.board.grid import BoardView, build_grid
from ctiboard.board.models import Favourite
from ctiboard.tenancy.models import Extension, ExtensionGroup, Membership
from tests.board.support import login, tile_numbers
from tests.conftest import Company


def shown_numbers(html: str) -> list[str]:
    """Tiles not marked hidden, in page order."""
    return re.findall(r'data-number="([^"]+)"[^>]*tabindex="0"(?! hidden)', html)


def section_titles(html: str) -> list[str]:
    return [t.strip() for t in re.findall(r'<h2 id="h-[^"]+">([^<]+)<', html)]


def set_state(extension: Extension, line: str, presence: str = "available") -> None:
    extension.line, extension.presence = line, presence
    extension.seq += 1
    extension.save()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", BoardView()),
        ("q=%20anna%20%20m%20", BoardView(q="anna m")),
        ("line=ringing&line=idle&line=bogus", BoardView(lines=("ringing", "idle"))),
        ("presence=dnd&presence=null", BoardView(presences=("dnd", "null"))),
        (
            "sort=status&flat=1&mode=compact",
            BoardView(sort="status", sections=False, mode="compact"),
        ),
        ("sort=evil&mode=<script>", BoardView()),
        ("q=" + "x" * 300, BoardView(q="x" * 100)),
    ],
)
def test_view_from_the_query_string_drops_what_it_does_not_know(
    query: str, expected: BoardView
) -> None:
    assert BoardView.from_query(query) == expected


def test_view_round_trips_through_the_query_string() -> None:
    view = BoardView(
        q="anna", lines=("ringing",), presences=("dnd",), sort="name", mode="wallboard"
    )
    assert BoardView.from_query(view.querystring) == view
    assert BoardView().querystring == ""
    assert BoardView.from_query(view.with_mode("")).mode == ""


def test_search_by_name_or_number(client: Client, owner: User, company: Company) -> None:
    url = reverse("board", args=[company.tenant.account])
    login(client, owner)
    html = client.get(url, {"q": "person 3"}).content.decode()
    # Every tile the user may see is there (a push can bring it back); the others are hidden.
    assert tile_numbers(html) == ["100", "101", "102", "103", "104", "105"]
    assert shown_numbers(html) == ["103"]
    assert shown_numbers(client.get(url, {"q": "10"}).content.decode()) == tile_numbers(html)
    assert shown_numbers(client.get(url, {"q": "104"}).content.decode()) == ["104"]


def test_filter_by_line_and_presence(client: Client, owner: User, company: Company) -> None:
    set_state(company.extensions[2], "ringing", "dnd")
    set_state(company.extensions[4], "in-use", "busy")
    set_state(company.extensions[5], "ringing")
    url = reverse("board", args=[company.tenant.account])
    login(client, owner)
    assert shown_numbers(client.get(url, {"line": "ringing"}).content.decode()) == ["102", "105"]
    html = client.get(url, {"line": ["ringing", "in-use"], "presence": "dnd"}).content.decode()
    assert shown_numbers(html) == ["102"]
    assert 'value="ringing" checked' in html and 'value="dnd" checked' in html


def test_nothing_matches_says_so(client: Client, owner: User, company: Company) -> None:
    login(client, owner)
    html = client.get(
        reverse("board", args=[company.tenant.account]), {"q": "nobody"}
    ).content.decode()
    assert shown_numbers(html) == []
    assert re.search(r'<p class="no-match">', html)


def test_sort_by_name_and_by_status(client: Client, owner: User, company: Company) -> None:
    names = ["Zoe", "anna", "Bert", "", "Carl", "Dora"]
    for extension, name in zip(company.extensions, names, strict=True):
        extension.name = name
        extension.save()
    set_state(company.extensions[4], "in-use")
    set_state(company.extensions[5], "ringing")
    set_state(company.extensions[1], "offline")
    url = reverse("board", args=[company.tenant.account])
    login(client, owner)
    by_name = tile_numbers(client.get(url, {"sort": "name"}).content.decode())
    assert by_name == ["101", "102", "104", "105", "100", "103"]  # no name last
    by_status = tile_numbers(client.get(url, {"sort": "status"}).content.decode())
    assert by_status == ["105", "104", "100", "102", "103", "101"]


def test_departments_are_sections(client: Client, owner: User, company: Company) -> None:
    sales = ExtensionGroup.objects.create(tenant=company.tenant, name="Sales")
    sales.extensions.set(company.extensions[3:5])
    admin = ExtensionGroup.objects.create(tenant=company.tenant, name="Admin")
    admin.extensions.set(company.extensions[4:6])
    url = reverse("board", args=[company.tenant.account])
    login(client, owner)
    html = client.get(url).content.decode()
    assert section_titles(html) == ["Admin", "Sales", "Other extensions"]
    # One tile per extension: 104 is in both groups and shows under the first.
    assert tile_numbers(html) == ["104", "105", "103", "100", "101", "102"]
    flat = client.get(url, {"flat": "1"}).content.decode()
    assert section_titles(flat) == [] and tile_numbers(flat) == [
        e.number for e in company.extensions
    ]


def test_a_users_granted_group_comes_first(member: User, company: Company) -> None:
    support = ExtensionGroup.objects.create(tenant=company.tenant, name="Support")
    support.extensions.set(company.extensions[1:3])
    board = ExtensionGroup.objects.create(tenant=company.tenant, name="Board")
    board.extensions.set(company.extensions[2:3])
    membership = Membership.objects.get(user=member)
    membership.groups.add(support)
    grid = build_grid(member, membership, BoardView())
    assert [(s.title, [t.ext.number for t in s.tiles]) for s in grid.sections] == [
        ("Support", ["101", "102"])
    ]


def test_favourites_are_pinned_first(client: Client, owner: User, company: Company) -> None:
    Favourite.objects.create(user=owner, extension=company.extensions[4])
    Favourite.objects.create(user=owner, extension=company.extensions[2])
    login(client, owner)
    html = client.get(reverse("board", args=[company.tenant.account])).content.decode()
    assert section_titles(html) == ["Favourites", "Other extensions"]
    assert tile_numbers(html) == ["102", "104", "100", "101", "103", "105"]
    assert html.count('aria-pressed="true"') == 2


def test_htmx_grid_keeps_the_view(client: Client, owner: User, company: Company) -> None:
    login(client, owner)
    response = client.get(
        reverse("board", args=[company.tenant.account]),
        {"q": "Person 2", "sort": "name"},
        headers={"HX-Request": "true"},
    )
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="tiles"') and 'data-sort="name"' in html
    assert shown_numbers(html) == ["102"]


@pytest.mark.parametrize("mode", ["compact", "wallboard"])
def test_display_modes(client: Client, owner: User, company: Company, mode: str) -> None:
    login(client, owner)
    html = client.get(
        reverse("board", args=[company.tenant.account]), {"mode": mode, "q": "1"}
    ).content.decode()
    assert f'class="board-page mode-{mode}"' in html
    # The mode survives a filter change: the filter form carries it.
    assert f'<input type="hidden" name="mode" value="{mode}">' in html
    assert len(tile_numbers(html)) == 6


def test_a_thousand_extensions_render_in_one_request(
    client: Client, owner: User, company: Company, django_assert_max_num_queries
) -> None:  # type: ignore[no-untyped-def]
    Extension.objects.bulk_create(
        Extension(tenant=company.tenant, number=str(1000 + i), name=f"Bulk {i}", line="idle")
        for i in range(1000)
    )
    login(client, owner)
    with django_assert_max_num_queries(20):
        response = client.get(reverse("board", args=[company.tenant.account]), {"mode": "compact"})
    assert len(tile_numbers(response.content.decode())) == 1006
