"""What a tile says about a call, and what the user sees when his own phone rings."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from ctiboard.asgi import application
from ctiboard.contacts.models import Contact
from ctiboard.ingest import writer
from ctiboard.live import publish
from ctiboard.tenancy.models import Extension, Membership
from tests.board.support import PAGE, connect, in_call, login, session_cookie, tile_ids
from tests.calls.events import REMOTE, call
from tests.conftest import Company

CRM = "https://crm.example/search?phone={number}"


def board_html(client: Client, user: User, company: Company) -> str:
    return login(client, user).get(reverse("board", args=[company.tenant.account])).content.decode()


def test_tile_shows_partner_direction_phonebook_name_and_crm(
    client: Client, owner: User, company: Company
) -> None:
    company.tenant.crm_url_template = CRM
    company.tenant.save()
    Contact.objects.create(tenant=company.tenant, name="Anna Kundin", number="030 123456", vip=True)
    in_call(company.extensions[3], "4930123456")
    in_call(company.extensions[4], "102", direction="outbound", state="ringing")
    html = board_html(client, owner, company)
    tile = html[html.index(f'id="ext-{company.extensions[3].pk}"') :]
    tile = tile[: tile.index("</article>")]
    assert "from" in tile and "Anna Kundin" in tile and ">VIP<" in tile
    # A number of the tenant's own country, written the national way.
    assert ">030 123456<" in tile
    assert 'href="https://crm.example/search?phone=4930123456"' in tile
    assert 'rel="noopener noreferrer"' in tile
    # A running timer from when the line changed; the text is filled in by board.js.
    assert '<time class="timer" data-since="' in tile
    other = html[html.index(f'id="ext-{company.extensions[4].pk}"') :]
    other = other[: other.index("</article>")]
    assert "to" in other and ">102<" in other and "Anna" not in other


def test_line_only_viewers_see_no_call_details(
    client: Client, owner: User, company: Company
) -> None:
    Membership.objects.filter(user=owner).update(sees_call_details=False)
    Contact.objects.create(tenant=company.tenant, name="Anna Kundin", number="030 123456")
    in_call(company.extensions[3], "4930123456")
    html = board_html(client, owner, company)
    assert "4930123456" not in html and "Anna Kundin" not in html
    assert "call-info" not in html
    # The line state and its timer are line-level: they stay.
    assert "On a call" in html and 'class="timer"' in html


def test_the_own_phone_ringing_shows_a_banner(
    client: Client, owner: User, company: Company
) -> None:
    company.tenant.crm_url_template = CRM
    company.tenant.save()
    Contact.objects.create(
        tenant=company.tenant, name="Big Boss", number="+49 89 7654321", vip=True
    )
    in_call(company.extensions[0], "49897654321", state="ringing")
    html = board_html(client, owner, company)
    banner = html[html.index('<section id="incoming"') :]
    banner = banner[: banner.index("</section>")]
    assert 'data-state="ringing"' in banner and 'data-kind="vip"' in banner
    assert "Your phone is ringing" in banner and "Big Boss" in banner and "089 7654321" in banner
    assert 'data-crm="https://crm.example/search?phone=49897654321"' in banner


def test_no_banner_when_the_phone_is_quiet(client: Client, owner: User, company: Company) -> None:
    html = board_html(client, owner, company)
    assert '<section id="incoming" class="incoming" role="status" hidden>' in html


@pytest.mark.django_db(transaction=True)
async def test_the_socket_rings_the_own_phone_with_the_callers_name(
    owner: User, company: Company
) -> None:
    await Contact.objects.acreate(tenant=company.tenant, name="Anna Kundin", number="030 123456")
    socket = await connect(owner, company.tenant.account)
    assert (await socket.connect())[0]
    first = await socket.receive_from()
    assert '<section id="incoming"' in first and "hidden" in first.split('id="incoming"')[1][:80]

    def ring(state: str) -> None:
        # Through the worker's store, which looks up the caller in the phonebook.
        number = company.extensions[0].number
        event = call("u1", "ring" if state == "ringing" else "answer", number, caller=REMOTE)
        writer.apply(writer.load_state(company.tenant.pk), [event])

    await sync_to_async(ring)("ringing")
    pushed = await socket.receive_from()
    assert tile_ids(pushed) == {f"ext-{company.extensions[0].pk}"}
    assert 'data-state="ringing"' in pushed and "Anna Kundin" in pushed
    assert 'data-kind="external"' in pushed
    await sync_to_async(ring)("in-call")
    pushed = await socket.receive_from()
    assert 'data-state="answered"' in pushed
    await socket.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_colleagues_ringing_do_not_ring_mine(owner: User, company: Company) -> None:
    socket = await connect(owner, company.tenant.account)
    assert (await socket.connect())[0]
    await socket.receive_from()

    def ring() -> None:
        other = Extension.objects.get(pk=company.extensions[3].pk)
        in_call(other, "4930123456", state="ringing")
        publish.extensions_changed([other])

    await sync_to_async(ring)()
    pushed = await socket.receive_from()
    assert 'id="incoming"' not in pushed
    await socket.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_the_socket_follows_the_pages_view(owner: User, company: Company) -> None:
    """Grids sent over the socket (reconnect, rights change) keep search, filter and sort."""
    cookie = await sync_to_async(session_cookie)(owner)
    headers = [*PAGE, (b"cookie", cookie)]
    socket = WebsocketCommunicator(
        application, f"/ws/board/{company.tenant.account}/?q=Person+3&sort=name", headers=headers
    )
    assert (await socket.connect())[0]
    grid = await socket.receive_from()
    assert 'data-sort="name"' in grid
    assert grid.count(" hidden") >= 5  # all but Person 3
    await socket.send_to(text_data='{"view": "?sort=status"}')
    assert await socket.receive_nothing(timeout=0.1)
    await sync_to_async(publish.visibility_changed)(owner.pk)
    grid = await socket.receive_from()
    assert 'data-sort="status"' in grid and len(tile_ids(grid)) == 6
    await socket.disconnect()


def test_without_call_details_the_banner_does_not_name_the_caller(
    client: Client, owner: User, company: Company
) -> None:
    Membership.objects.filter(user=owner).update(sees_call_details=False)
    Contact.objects.create(
        tenant=company.tenant, name="Big Boss", number="+49 89 7654321", vip=True
    )
    in_call(company.extensions[0], "49897654321", state="ringing")
    html = board_html(client, owner, company)
    banner = html[html.index('<section id="incoming"') :]
    banner = banner[: banner.index("</section>")]
    assert "Your phone is ringing" in banner and 'data-kind="unknown"' in banner
    assert "Big Boss" not in html and "7654321" not in html


def test_call_buttons_on_offline_and_own_tiles_say_why_they_do_not_call(
    client: Client, owner: User, company: Company
) -> None:
    Extension.objects.filter(pk=company.extensions[4].pk).update(line="offline")
    html = board_html(client, owner, company)
    own = tile_of(html, company.extensions[0])
    offline = tile_of(html, company.extensions[4])
    online = tile_of(html, company.extensions[3])
    for tile, reason in ((own, "This is your own phone."), (offline, "104 is offline.")):
        button = tile[tile.index('<button type="button" class="call"') :]
        # Focusable (aria-disabled, not disabled), nothing to submit (no data-form), and why.
        assert 'aria-disabled="true"' in button and "data-form" not in button.split(">")[0]
        assert (
            f'title="{reason}"' in button and f'<span class="sr-only">: {reason}</span>' in button
        )
    assert 'data-form="call-form"' in online and "aria-disabled" not in online


def test_who_may_not_call_gets_no_call_buttons(
    client: Client, owner: User, company: Company
) -> None:
    Membership.objects.filter(user=owner).update(can_call=False)
    assert 'class="call"' not in board_html(client, owner, company)


def tile_of(html: str, extension: Extension) -> str:
    tile = html[html.index(f'<article id="ext-{extension.pk}"') :]
    return tile[: tile.index("</article>")]
