"""The board socket through the full ASGI application, as a browser would use it."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from ctiboard.asgi import application
from ctiboard.tenancy.models import Extension, Membership
from tests.board.support import apply, connect, session_cookie, state, tile_ids
from tests.conftest import Company

pytestmark = pytest.mark.django_db(transaction=True)


async def test_anonymous_socket_is_refused(company: Company) -> None:
    communicator = await connect(None, company.tenant.account)
    connected, code = await communicator.connect()
    assert not connected and code == 4403


async def test_stranger_socket_is_refused(stranger: User, company: Company) -> None:
    communicator = await connect(stranger, company.tenant.account)
    connected, _ = await communicator.connect()
    assert not connected


async def test_foreign_origin_is_refused(owner: User, company: Company) -> None:
    cookie = await sync_to_async(session_cookie)(owner)
    communicator = WebsocketCommunicator(
        application,
        f"/ws/board/{company.tenant.account}/",
        headers=[(b"origin", b"https://evil.example"), (b"cookie", cookie)],
    )
    connected, _ = await communicator.connect()
    assert not connected


async def test_connect_sends_the_current_grid(member: User, company: Company) -> None:
    communicator = await connect(member, company.tenant.account)
    connected, _ = await communicator.connect()
    assert connected
    first = await communicator.receive_from()
    assert first.startswith('\n  <div id="tiles"') or '<div id="tiles"' in first
    assert 'hx-swap-oob="true"' in first
    assert tile_ids(first) == {f"ext-{e.pk}" for e in company.extensions[1:3]}
    assert 'id="pbx-status"' in first
    await communicator.disconnect()


async def test_changes_reach_only_sockets_that_may_see_them(
    owner: User, member: User, stranger: User, company: Company, other_company: Company
) -> None:
    owner_socket = await connect(owner, company.tenant.account)
    member_socket = await connect(member, company.tenant.account)
    stranger_socket = await connect(stranger, other_company.tenant.account)
    for socket in (owner_socket, member_socket, stranger_socket):
        assert (await socket.connect())[0]
        await socket.receive_from()  # the initial grid

    # 104 is visible to the owner only, 102 to owner and member.
    await apply(company, state("104", "ringing"))
    pushed = await owner_socket.receive_from()
    assert tile_ids(pushed) == {f"ext-{company.extensions[4].pk}"}
    assert "Ringing" in pushed and 'hx-swap-oob="true"' in pushed
    assert await member_socket.receive_nothing(timeout=0.2)

    await apply(company, state("102", "in-use"))
    for socket in (owner_socket, member_socket):
        pushed = await socket.receive_from()
        assert tile_ids(pushed) == {f"ext-{company.extensions[2].pk}"}
        assert "On a call" in pushed
    assert await stranger_socket.receive_nothing(timeout=0.2)
    for socket in (owner_socket, member_socket, stranger_socket):
        await socket.disconnect()


async def test_permission_change_reaches_an_open_socket(member: User, company: Company) -> None:
    socket = await connect(member, company.tenant.account)
    assert (await socket.connect())[0]
    await socket.receive_from()

    def grant_104() -> None:
        from ctiboard.live import publish

        membership = Membership.objects.get(user=member)
        membership.extensions.add(company.extensions[4])
        publish.visibility_changed(member.pk)

    await sync_to_async(grant_104)()
    resync = await socket.receive_from()
    assert f"ext-{company.extensions[4].pk}" in tile_ids(resync)
    # And from now on its changes arrive too.
    await apply(company, state("104", "ringing"))
    assert "Ringing" in await socket.receive_from()
    await socket.disconnect()


async def test_revoked_membership_closes_the_socket(member: User, company: Company) -> None:
    socket = await connect(member, company.tenant.account)
    assert (await socket.connect())[0]
    await socket.receive_from()

    def revoke() -> None:
        from ctiboard.live import publish

        Membership.objects.filter(user=member).delete()
        publish.visibility_changed(member.pk)

    await sync_to_async(revoke)()
    output = await socket.receive_output(timeout=2)
    assert output == {"type": "websocket.close", "code": 4403}


async def test_messages_from_the_browser_are_ignored(owner: User, company: Company) -> None:
    socket = await connect(owner, company.tenant.account)
    assert (await socket.connect())[0]
    await socket.receive_from()
    await socket.send_to(text_data='{"HEADERS": {}, "evil": "<script>"}')
    assert await socket.receive_nothing(timeout=0.2)
    await socket.disconnect()


async def test_unchanged_state_pushes_nothing(owner: User, company: Company) -> None:
    socket = await connect(owner, company.tenant.account)
    assert (await socket.connect())[0]
    await socket.receive_from()
    await apply(company, state("103", "idle", "available"))  # what is already stored
    assert await socket.receive_nothing(timeout=0.2)
    await socket.disconnect()
    await asyncio.sleep(0)
    assert await Extension.objects.filter(number="103", tenant=company.tenant).aget()


async def test_rights_changed_in_the_shell_reach_the_socket(member: User, company: Company) -> None:
    socket = await connect(member, company.tenant.account)
    assert (await socket.connect())[0]
    await socket.receive_from()

    def grant_group() -> None:
        from ctiboard.tenancy.models import ExtensionGroup

        group = ExtensionGroup.objects.create(tenant=company.tenant, name="Support")
        group.extensions.set(company.extensions[4:])
        Membership.objects.get(user=member).groups.add(group)

    await sync_to_async(grant_group)()
    grid = await socket.receive_from()
    while len(tile_ids(grid)) != 4:  # one resync per signal; the last shows the result
        grid = await socket.receive_from()
    assert tile_ids(grid) == {
        f"ext-{e.pk}" for e in company.extensions[1:3] + company.extensions[4:]
    }
    await socket.disconnect()


async def test_deactivated_user_loses_his_socket(member: User, company: Company) -> None:
    socket = await connect(member, company.tenant.account)
    assert (await socket.connect())[0]
    await socket.receive_from()
    member.is_active = False
    await sync_to_async(member.save)()
    assert await socket.receive_output(timeout=2) == {"type": "websocket.close", "code": 4403}


async def test_pushed_tiles_speak_the_pages_language(owner: User, company: Company) -> None:
    cookie = await sync_to_async(session_cookie)(owner)
    socket = WebsocketCommunicator(
        application,
        f"/ws/board/{company.tenant.account}/",
        headers=[
            (b"origin", b"http://127.0.0.1:8000"),
            (b"host", b"127.0.0.1:8000"),
            (b"cookie", cookie),
            (b"accept-language", b"de-DE,de;q=0.9"),
        ],
    )
    assert (await socket.connect())[0]
    assert "Frei" in await socket.receive_from()
    await apply(company, state("103", "in-use"))
    assert "Im Gespräch" in await socket.receive_from()
    await socket.disconnect()
    # An English socket at the same time gets English from the same render cache.
    english = await connect(owner, company.tenant.account)
    assert (await english.connect())[0]
    grid = await english.receive_from()
    assert "On a call" in grid and "Im Gespräch" not in grid
    await english.disconnect()


async def test_a_lost_message_is_noticed_and_repaired(owner: User, company: Company) -> None:
    socket = await connect(owner, company.tenant.account)
    assert (await socket.connect())[0]
    await socket.receive_from()

    def change_without_telling_anyone() -> None:
        # What a message lost on the way (a channel-layer reconnect) leaves behind.
        from ctiboard.tenancy.models import Tenant

        tenant = Tenant.objects.get(pk=company.tenant.pk)
        Extension.objects.filter(pk=company.extensions[4].pk).update(
            line="in-use", seq=tenant.event_seq + 1
        )
        Tenant.objects.filter(pk=tenant.pk).update(event_seq=tenant.event_seq + 1)

    await sync_to_async(change_without_telling_anyone)()
    await apply(company, state("101", "ringing"))
    repaired = await socket.receive_from()
    # Not just the tile that was pushed: the whole grid, with the change that was lost.
    assert len(tile_ids(repaired)) == len(company.extensions)
    lost_tile = repaired.split(f'id="ext-{company.extensions[4].pk}"')[1].split("</article>")[0]
    assert "On a call" in lost_tile
    await socket.disconnect()


async def test_a_new_extension_appears_on_open_boards(owner: User, company: Company) -> None:
    socket = await connect(owner, company.tenant.account)
    assert (await socket.connect())[0]
    await socket.receive_from()
    await apply(company, state("999", "idle"))  # the PBX reports an extension we never saw
    grid = await socket.receive_from()
    assert len(tile_ids(grid)) == len(company.extensions) + 1
    assert 'data-number="999"' in grid
    await socket.disconnect()
