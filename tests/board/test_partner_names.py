"""An internal call partner is named like his tile names him, to viewers who see that tile.

owner sees every extension (with call details), member sees 101 (his own) and 102; a viewer
without the call-details right sees no partner at all; a stranger sees nothing of the tenant.
"""

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from ctiboard.ingest import writer
from ctiboard.tenancy.models import Extension, Membership
from tests.board.support import in_call, login, open_socket, receive_sync
from tests.calls.events import call
from tests.conftest import Company


def tile_of(html: str, extension: Extension) -> str:
    tile = html[html.index(f'<article id="ext-{extension.pk}"') :]
    return tile[: tile.index("</article>")]


def board(client: Client, user: User, company: Company) -> str:
    response = login(client, user).get(reverse("board", args=[company.tenant.account]))
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.django_db
def test_on_the_page_a_colleague_is_named_only_to_who_sees_him(
    client: Client, owner: User, member: User, company: Company
) -> None:
    e = company.extensions
    in_call(e[2], "104")  # 102 talks to 104: member does not see 104
    in_call(e[1], "102", direction="outbound")  # 101 calls 102: both on member's board

    mine = board(Client(), owner, company)
    assert "Person 4" in tile_of(mine, e[2]) and ">104<" in tile_of(mine, e[2])

    theirs = board(client, member, company)
    assert ">104<" in tile_of(theirs, e[2]) and "Person 4" not in theirs
    assert "Person 2" in tile_of(theirs, e[1]).split('class="call-info"')[1]


@pytest.mark.django_db
def test_line_only_viewers_see_no_partner_not_even_a_colleague(
    client: Client, member: User, company: Company
) -> None:
    Membership.objects.filter(user=member).update(sees_call_details=False)
    in_call(company.extensions[1], "102", direction="outbound")
    tile = tile_of(board(client, member, company), company.extensions[1])
    assert "call-info" not in tile and "Person 2" not in tile and ">102<" not in tile


@pytest.mark.django_db
def test_a_stranger_gets_no_board_to_see_names_on(
    client: Client, stranger: User, company: Company
) -> None:
    in_call(company.extensions[2], "104")
    response = login(client, stranger).get(reverse("board", args=[company.tenant.account]))
    assert response.status_code == 404


def _ring(company: Company, callee: str, caller: str) -> None:
    """Through the worker's store, which names internal partners in the batch."""
    writer.apply(writer.load_state(company.tenant.pk), [call("u1", "ring", callee, caller=caller)])


@pytest.mark.django_db(transaction=True)
async def test_pushed_tiles_name_a_colleague_only_to_sockets_that_see_him(
    owner: User, member: User, company: Company
) -> None:
    e = company.extensions
    owner_socket = await open_socket(owner, company)
    member_socket = await open_socket(member, company)
    for socket in (owner_socket, member_socket):
        await receive_sync(socket)

    await sync_to_async(_ring)(company, "102", "104")  # member does not see 104
    for socket, named in ((owner_socket, True), (member_socket, False)):
        tile = tile_of(await socket.receive_from(), e[2])
        assert ">104<" in tile
        assert ("Person 4" in tile) is named

    await sync_to_async(_ring)(company, "101", "102")  # member's own phone: 102 calls
    pushed = await member_socket.receive_from()
    assert "Person 2" in tile_of(pushed, e[1])
    banner = pushed[pushed.index('<section id="incoming"') :]
    assert 'data-name="Person 2"' in banner and 'data-kind="internal"' in banner
    for socket in (owner_socket, member_socket):
        await socket.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_pushed_tiles_show_line_only_viewers_no_partner(
    member: User, company: Company
) -> None:
    await Membership.objects.filter(user=member).aupdate(sees_call_details=False)
    socket = await open_socket(member, company)
    await receive_sync(socket)
    await sync_to_async(_ring)(company, "102", "101")
    tile = tile_of(await socket.receive_from(), company.extensions[2])
    assert "call-info" not in tile and "Person 1" not in tile
    await socket.disconnect()
