"""The board page and its htmx grid with the tiles spliced in after rendering
(grid_html.render_spliced): byte for byte the page the template renders with the tiles in it."""

import re

import pytest
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.test import RequestFactory
from django_htmx.middleware import HtmxDetails

from ctiboard.board.grid import BoardView, build_grid
from ctiboard.board.grid_html import grid_context, render_spliced
from ctiboard.board.models import Favourite
from ctiboard.board.views import board_context
from ctiboard.tenancy.models import ExtensionGroup, membership_for
from tests.board.support import tile_numbers
from tests.conftest import Company

# Differ between two renders of one page: the CSRF token is masked anew each time a template
# asks for it, and the page says when it was rendered.
PER_RENDER = re.compile(r'(csrfmiddlewaretoken" value="|"X-CSRFToken": "|data-server-now=")[^"]+')


def comparable(response: HttpResponse) -> str:
    return PER_RENDER.sub(r"\1…", response.content.decode())


@pytest.fixture
def sections(owner: User, company: Company) -> Company:
    """Favourites, two departments and the rest; names that look like the splice marker."""
    Favourite.objects.create(user=owner, extension=company.extensions[5])
    sales = ExtensionGroup.objects.create(tenant=company.tenant, name="Sales")
    sales.extensions.set(company.extensions[2:4])
    admin = ExtensionGroup.objects.create(tenant=company.tenant, name="Admin <!-- -->")
    admin.extensions.set(company.extensions[4:5])
    company.extensions[3].name = "<!--ctiboard-tiles 0-->"
    company.extensions[4].name = "Jürgen ☆ Müller"
    for extension in company.extensions[3:5]:
        extension.save()
    return company


def page_request(owner: User, htmx: bool = False) -> HttpRequest:
    request = RequestFactory().get("/", headers={"HX-Request": "true"} if htmx else {})
    request.user = owner
    request.htmx = HtmxDetails(request)  # type: ignore[attr-defined]
    request.csp_nonce = "nonce"  # type: ignore[attr-defined]
    return request


def test_the_page_is_the_one_the_template_renders(owner: User, sections: Company) -> None:
    membership = membership_for(owner, sections.tenant.account)
    assert membership is not None
    request = page_request(owner)
    context = board_context(request, owner, membership, BoardView())
    grid = context["grid"]
    assert [section.title for section in grid.sections] == [
        "Favourites",
        "Admin <!-- -->",
        "Sales",
        "Other extensions",
    ]
    spliced = render_spliced(request, "board/board.html", context, grid)
    plain = render(request, "board/board.html", context)
    assert comparable(spliced) == comparable(plain)
    html = spliced.content.decode()
    assert tile_numbers(html) == ["105", "104", "102", "103", "100", "101"]
    assert "&lt;!--ctiboard-tiles 0--&gt;" in html and "Jürgen ☆ Müller" in html
    assert "<!--ctiboard-tiles" not in html
    # The grid is left as it was: a later render puts the tiles in again.
    assert all(section.html == section.tiles_html() for section in grid.sections)


def test_the_htmx_grid_is_the_partial_the_template_renders(owner: User, sections: Company) -> None:
    membership = membership_for(owner, sections.tenant.account)
    assert membership is not None
    request = page_request(owner, htmx=True)
    grid = build_grid(owner, membership, BoardView(q="1", sort="name"))
    context = grid_context(grid)
    spliced = render_spliced(request, "board/board.html#grid", context, grid)
    plain = render(request, "board/board.html#grid", context)
    assert spliced.content == plain.content
    assert spliced.content.decode().lstrip().startswith('<div id="tiles"')


def test_an_empty_board_has_nothing_to_splice(owner: User, company: Company) -> None:
    membership = membership_for(owner, company.tenant.account)
    assert membership is not None
    company.tenant.extensions.all().delete()
    request = page_request(owner)
    context = board_context(request, owner, membership, BoardView())
    spliced = render_spliced(request, "board/board.html", context, context["grid"])
    assert "There are no extensions for you to see" in spliced.content.decode()
    assert comparable(spliced) == comparable(render(request, "board/board.html", context))
