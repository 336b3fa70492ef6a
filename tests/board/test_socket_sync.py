"""What a board socket sends when it (re)connects: only what changed since the page's grid, or
the whole grid, in messages small enough for any Daphne; and what it keeps per socket."""

import re

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from ctiboard.board import consumers, partners, pushes
from ctiboard.board.models import Favourite
from ctiboard.board.rendering import MESSAGE_BUDGET
from ctiboard.contacts.models import Contact
from ctiboard.ingest import writer
from ctiboard.live import publish
from ctiboard.tenancy.models import Extension, ExtensionGroup, Membership, Tenant
from tests.board.support import (
    apply,
    in_call,
    open_socket,
    receive_sync,
    session_cookie,
    state,
    tile_ids,
)
from tests.calls.events import call, line
from tests.conftest import PASSWORD, Company

pytestmark = pytest.mark.django_db(transaction=True)

VERSION = re.compile(r'<span id="grid-version" hidden data-seq="(\d+)" data-grid="(\w+)"')


def page_version(user: User, company: Company, query: str = "") -> str:
    """The socket URL's query as board.js builds it from the page the user just loaded."""
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    html = client.get(reverse("board", args=[company.tenant.account]) + query).content.decode()
    match = VERSION.search(html)
    assert match, "the page renders its grid's version"
    view = query.lstrip("?")
    return f"{view}&since={match[1]}&grid={match[2]}".lstrip("&")


async def test_a_socket_right_after_its_page_sends_no_grid(owner: User, company: Company) -> None:
    query = await sync_to_async(page_version)(owner, company)
    socket = await open_socket(owner, company, query)
    (message,) = await receive_sync(socket)
    assert 'id="tiles"' not in message and tile_ids(message) == set()
    assert 'id="pbx-status"' in message and 'id="incoming"' in message
    assert 'id="grid-version"' in message and 'hx-swap-oob="true"' in message
    # And it is live: changes arrive as usual.
    await apply(company, state("103", "ringing"))
    assert tile_ids(await socket.receive_from()) == {f"ext-{company.extensions[3].pk}"}
    await socket.disconnect()


async def test_tiles_changed_since_the_page_come_with_the_connect(
    owner: User, company: Company
) -> None:
    query = await sync_to_async(page_version)(owner, company, "?line=ringing")
    # Between the page's render and the socket (or while the socket was away).
    await apply(company, state("102", "ringing"), state("104", "in-use"))
    socket = await open_socket(owner, company, query)
    (message,) = await receive_sync(socket)
    assert 'id="tiles"' not in message
    assert tile_ids(message) == {f"ext-{company.extensions[i].pk}" for i in (2, 4)}
    tile_102 = message.split(f'id="ext-{company.extensions[2].pk}"')[1].split(">")[0]
    tile_104 = message.split(f'id="ext-{company.extensions[4].pk}"')[1].split(">")[0]
    # Filtered by the page's view like every tile of a grid.
    assert "hidden" not in tile_102 and "hidden" in tile_104
    seq, _ = VERSION.search(message.replace(' hx-swap-oob="true"', "")).groups()  # type: ignore[union-attr]
    assert int(seq) > int(re.search(r"since=(\d+)", query)[1])  # type: ignore[index]
    await socket.disconnect()


def _grant_group(member: User, company: Company) -> None:
    group = ExtensionGroup.objects.create(tenant=company.tenant, name="Support")
    group.extensions.set(company.extensions[4:])
    Membership.objects.get(user=member).groups.add(group)


def _pin(user: User, company: Company) -> None:
    Favourite.objects.create(user=user, extension=company.extensions[2])


def _new_extension(user: User, company: Company) -> None:
    Extension.objects.create(tenant=company.tenant, number="555", name="New", line="idle")


def _remove_extension(user: User, company: Company) -> None:
    Extension.objects.filter(pk=company.extensions[2].pk).update(active=False)


def _new_department(user: User, company: Company) -> None:
    group = ExtensionGroup.objects.create(tenant=company.tenant, name="Sales")
    group.extensions.set(company.extensions[1:2])


def _rename(user: User, company: Company) -> None:
    # The admin edits a name: no event, no seq; the page's name is out of date.
    Extension.objects.filter(pk=company.extensions[1].pk).update(name="Renamed")


def _phonebook(user: User, company: Company) -> None:
    Contact.objects.create(tenant=company.tenant, name="Anna Kundin", number="030 123456")


@pytest.mark.parametrize(
    ("change", "who"),
    [
        (_grant_group, "member"),
        (_pin, "member"),
        (_new_extension, "owner"),
        (_remove_extension, "member"),
        (_new_department, "member"),
        (_rename, "member"),
        (_phonebook, "member"),
    ],
)
async def test_anything_but_tile_states_changed_sends_the_whole_grid(
    request: pytest.FixtureRequest, company: Company, change, who: str
) -> None:  # type: ignore[no-untyped-def]
    user = await sync_to_async(request.getfixturevalue)(who)

    def set_up() -> str:
        in_call(Extension.objects.get(pk=company.extensions[1].pk), "030123456")
        return page_version(user, company)

    query = await sync_to_async(set_up)()
    await sync_to_async(change)(user, company)
    socket = await open_socket(user, company, query)
    (message,) = await receive_sync(socket)
    assert '<div id="tiles"' in message
    expected = await sync_to_async(
        lambda: set(
            Extension.objects.visible_to(user)
            .filter(tenant=company.tenant)
            .values_list("pk", flat=True)
        )
    )()
    assert tile_ids(message) == {f"ext-{pk}" for pk in expected}
    await socket.disconnect()


@pytest.mark.parametrize(
    "query", ["since=0&grid=0123456789abcdef", "grid=abc", "since=x&grid=abc", "since=99999999"]
)
async def test_a_version_that_does_not_match_sends_the_whole_grid(
    owner: User, company: Company, query: str
) -> None:
    socket = await open_socket(owner, company, query)
    (message,) = await receive_sync(socket)
    assert len(tile_ids(message)) == len(company.extensions)
    await socket.disconnect()


async def test_a_version_from_the_future_sends_the_whole_grid(
    owner: User, company: Company
) -> None:
    # E.g. the database was restored from a backup: the page's seq is ahead of the tenant's.
    query = await sync_to_async(page_version)(owner, company)
    since = int(re.search(r"since=(\d+)", query)[1])  # type: ignore[index]
    query = query.replace(f"since={since}", f"since={since + 5}")
    socket = await open_socket(owner, company, query)
    (message,) = await receive_sync(socket)
    assert len(tile_ids(message)) == len(company.extensions)
    await socket.disconnect()


def _grow(company: Company, count: int) -> None:
    Extension.objects.bulk_create(
        Extension(tenant=company.tenant, number=str(1000 + i), name=f"Bulk {i}", line="idle")
        for i in range(count)
    )
    group = ExtensionGroup.objects.create(tenant=company.tenant, name="Bulk")
    group.extensions.set(Extension.objects.filter(tenant=company.tenant, number__gte="1000"))


async def test_a_large_grid_goes_in_parts_below_the_message_limit(
    owner: User, company: Company
) -> None:
    await sync_to_async(_grow)(company, 800)
    socket = await open_socket(owner, company, "q=Bulk+1&sort=name")
    messages = await receive_sync(socket)
    assert len(messages) >= 3
    assert all(len(message) <= MESSAGE_BUDGET for message in messages)
    # rendering.pack puts as many whole parts into a message as fit: the skeleton shares its
    # message with the first run of tiles when both fit, which depends on the tiles' lengths
    # down to the digits of their ids (the database's sequence, so the tests that ran before).
    # Each message holds whole parts, the skeleton first: judge the parts, not the messages.
    chunk = '<div hx-swap-oob="beforeend:#tiles-'
    assert all(
        message.lstrip().startswith((chunk, '<span id="grid-version"')) for message in messages[1:]
    )
    skeleton, *parts = "".join(messages).split(chunk)
    # First the sections with their counts and hidden flags, no tiles and no version yet.
    assert messages[0].startswith(skeleton.rstrip())
    assert '<div id="tiles"' in skeleton and tile_ids(skeleton) == set()
    assert '<div class="grid" id="tiles-group-' in skeleton and '<small class="count">' in skeleton
    assert '<span id="grid-version" hidden></span>' in skeleton
    # Then the tiles, appended to their sections in the grid's order; the version last.
    assert len(parts) >= 2
    versions = [VERSION.search(part.replace(' hx-swap-oob="true"', "")) for part in parts]
    assert versions[-1] and not any(versions[:-1])
    numbers = re.findall(r'data-number="(\d+)"', "".join(parts))

    def rendered_page() -> str:
        client = Client()
        assert client.login(username=owner.username, password=PASSWORD)
        url = reverse("board", args=[company.tenant.account])
        return client.get(url, {"q": "Bulk 1", "sort": "name"}).content.decode()

    html = await sync_to_async(rendered_page)()
    # The same tiles in the same order as the page renders them, hidden flags included.
    assert numbers == re.findall(r'<article id="ext-\d+" [^>]*data-number="(\d+)"', html)
    assert len(numbers) == 806
    tiles_html = "".join(re.findall(r"<article .*?</article>", "".join(parts), re.S))
    assert tiles_html == "".join(re.findall(r"<article .*?</article>", html, re.S))
    await socket.disconnect()


async def test_a_large_batch_of_changes_goes_in_parts(owner: User, company: Company) -> None:
    await sync_to_async(_grow)(company, 800)
    socket = await open_socket(owner, company)
    await receive_sync(socket)

    def change_all() -> None:
        # What the first extension sync of a tenant does: every tile changes in one batch.
        tenant = company.tenant
        tenant.refresh_from_db()
        changed = list(Extension.objects.filter(tenant=tenant).order_by("pk"))
        for seq, extension in enumerate(changed, start=tenant.event_seq + 1):
            extension.line, extension.seq = "in-use", seq
            extension.save()
        Tenant.objects.filter(pk=tenant.pk).update(event_seq=changed[-1].seq)
        publish.extensions_changed(changed)

    await sync_to_async(change_all)()
    received: set[str] = set()
    while len(received) < 806:
        message = await socket.receive_from()
        assert len(message) <= MESSAGE_BUDGET
        received |= tile_ids(message)
    await socket.disconnect()


async def test_sockets_of_equal_rights_share_their_extension_ids(
    owner: User, member: User, company: Company
) -> None:
    def ids_of(user: User) -> frozenset[int]:
        return consumers.shared_ids(Extension.objects.visible_to(user).values_list("pk", flat=True))

    assert await sync_to_async(ids_of)(owner) is await sync_to_async(ids_of)(owner)
    assert await sync_to_async(ids_of)(member) is not await sync_to_async(ids_of)(owner)
    assert consumers.shared_ids([3, 1]) is consumers.shared_ids((1, 3))


async def test_pushed_tiles_show_the_contact_the_worker_looked_up(
    owner: User, company: Company, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker looks up call partners once per batch; web processes never do for pushes."""
    await Contact.objects.acreate(tenant=company.tenant, name="Anna Kundin", number="030 123456")
    web_lookups: list[object] = []
    monkeypatch.setattr(partners, "lookup_contacts", lambda *a: web_lookups.append(a) or {})
    cookie = await sync_to_async(session_cookie)(owner)
    sockets = [await open_socket(owner, company, cookie=cookie) for _ in range(5)]
    for socket in sockets:
        await receive_sync(socket)
    web_lookups.clear()

    def call_comes_in() -> None:
        number = company.extensions[3].number
        event = call("u1", "ring", number, caller="4930123456")
        writer.apply(writer.load_state(company.tenant.pk), [event])

    await sync_to_async(call_comes_in)()
    for socket in sockets:
        assert "Anna Kundin" in await socket.receive_from()
        await socket.disconnect()
    assert web_lookups == []


async def test_sockets_of_equal_rights_share_one_render_of_a_batch(
    owner: User, company: Company, monkeypatch: pytest.MonkeyPatch
) -> None:
    renders: list[int] = []
    real_render = pushes.render_tile_oob

    def counted(extension, viewer, contact=None):  # type: ignore[no-untyped-def]
        renders.append(extension.pk)
        return real_render(extension, viewer, contact)

    monkeypatch.setattr(pushes, "render_tile_oob", counted)
    cookie = await sync_to_async(session_cookie)(owner)
    sockets = [await open_socket(owner, company, cookie=cookie) for _ in range(4)]
    for socket in sockets:
        await receive_sync(socket)

    def lines_change() -> None:
        writer.apply(
            writer.load_state(company.tenant.pk),
            [line(company.extensions[n].number, "ringing", 1) for n in (1, 2)],
        )

    await sync_to_async(lines_change)()
    received = [await socket.receive_from() for socket in sockets]
    assert len(set(received)) == 1 and len(tile_ids(received[0])) == 2
    assert sorted(renders) == sorted(company.extensions[n].pk for n in (1, 2))
    for socket in sockets:
        await socket.disconnect()


async def test_a_batch_from_a_worker_of_the_previous_release_still_shows(
    owner: User, company: Company
) -> None:
    """Rolling deploys: such a batch has no name and no contacts; it is rendered per socket."""
    socket = await open_socket(owner, company)
    await receive_sync(socket)

    def legacy_payload() -> dict[str, object]:
        extension = Extension.objects.get(pk=company.extensions[2].pk)
        tenant = Tenant.objects.get(pk=company.tenant.pk)
        extension.line, extension.seq = "ringing", tenant.event_seq + 1
        payload = extension.to_payload()
        for key in ("call_state", "call_partner", "call_direction", "call_since"):
            payload.pop(key)
        return payload

    payload = await sync_to_async(legacy_payload)()
    await get_channel_layer().group_send(
        f"tenant.{company.tenant.pk}", {"type": "extensions.changed", "extensions": [payload]}
    )
    pushed = await socket.receive_from()
    assert tile_ids(pushed) == {f"ext-{company.extensions[2].pk}"} and "line-ringing" in pushed
    await socket.disconnect()
