"""The process's fan-out: one tenant subscription for all its sockets, batches taken while a
socket syncs, rounds of merged batches (the frames' writers: tests/lib/test_wsframes.py)."""

import asyncio
import dataclasses
import functools
import json
import threading
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.db import close_old_connections

from ctiboard.asgi import application
from ctiboard.board import consumers
from ctiboard.board.pushes import Audience
from ctiboard.cti.events import StateEvent
from ctiboard.ingest import writer
from ctiboard.live.batches import Batch, merge
from ctiboard.live.fanout import FanOut, _coalesced, fanout
from ctiboard.live.groups import tenant_group
from ctiboard.tenancy.models import Extension, Tenant
from tests.board.support import (
    PAGE,
    apply,
    open_socket,
    receive_sync,
    session_cookie,
    state,
    tile_ids,
)
from tests.conftest import Company

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_process_subscribes_once_per_tenant(
    owner: User, member: User, stranger: User, company: Company, other_company: Company
) -> None:
    layer = get_channel_layer()
    owner_cookie = await sync_to_async(session_cookie)(owner)
    sockets = [
        await open_socket(owner, company, cookie=owner_cookie),
        await open_socket(member, company),
        await open_socket(owner, company, cookie=owner_cookie),
        await open_socket(stranger, other_company),
    ]
    for board in sockets:
        await receive_sync(board)

    members = layer.groups.get(tenant_group(company.tenant.pk), {})
    assert len(members) == 1 and next(iter(members)).startswith("fanout.")
    assert fanout().subscribers(company.tenant.pk) == 3
    assert fanout().subscribers(other_company.tenant.pk) == 1

    await apply(company, state("102", "in-use"))
    for board in sockets[:3]:
        assert tile_ids(await board.receive_from()) == {f"ext-{company.extensions[2].pk}"}
    assert await sockets[3].receive_nothing(timeout=0.2)

    for board in sockets:
        await board.disconnect()
    await asyncio.sleep(0.05)  # the last socket's leaving closes the subscription
    assert fanout().subscribers(company.tenant.pk) == 0
    assert not layer.groups.get(tenant_group(company.tenant.pk))


def _slow_load(monkeypatch: pytest.MonkeyPatch, *, after_read: bool) -> threading.Event:
    """Hold every socket's database load, before or after it read the state, until set."""
    release = threading.Event()
    original = consumers.BoardConsumer.__dict__["_load"].func

    @functools.wraps(original)
    def load(self: consumers.BoardConsumer, page: Any, link: Any) -> Any:
        if not after_read:
            assert release.wait(10)
        sync = original(self, page, link)
        if after_read:
            assert release.wait(10)
        return sync

    monkeypatch.setattr(consumers.BoardConsumer, "_load", consumers.database_sync_to_async(load))
    return release


async def apply_beside(company: Company, *events: StateEvent) -> None:
    """``apply`` from a thread of its own: the socket's load holds the shared one."""

    def write() -> None:
        try:
            tenant_state = writer.load_state(company.tenant.pk)
            tenant_state.account = company.tenant.account
            writer.apply_states(tenant_state, list(events))
        finally:
            close_old_connections()

    await sync_to_async(write, thread_sensitive=False)()


async def _connect_while(release: threading.Event, owner: User, company: Company) -> Any:
    opening = asyncio.ensure_future(open_socket(owner, company))
    await asyncio.sleep(0.3)  # subscribed, loading
    await apply_beside(company, state("104", "ringing"))
    await asyncio.sleep(0.1)
    release.set()
    return await opening


async def test_a_change_committed_after_the_sync_read_follows_the_sync(
    owner: User, company: Company, monkeypatch: pytest.MonkeyPatch
) -> None:
    socket = await _connect_while(_slow_load(monkeypatch, after_read=True), owner, company)
    sync = "".join(await receive_sync(socket))
    ringing = f'id="ext-{company.extensions[4].pk}" class="tile line-ringing'
    assert ringing not in sync
    pushed = await socket.receive_from()
    assert ringing in pushed
    await socket.disconnect()


async def test_a_change_the_sync_already_read_is_not_sent_again(
    owner: User, company: Company, monkeypatch: pytest.MonkeyPatch
) -> None:
    socket = await _connect_while(_slow_load(monkeypatch, after_read=False), owner, company)
    sync = "".join(await receive_sync(socket))
    assert f'id="ext-{company.extensions[4].pk}" class="tile line-ringing' in sync
    assert await socket.receive_nothing(timeout=0.3)
    await socket.disconnect()


async def test_too_many_batches_during_a_sync_mean_one_more_sync(
    owner: User, company: Company, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumers, "MAX_PENDING", 1)
    release = _slow_load(monkeypatch, after_read=True)
    opening = asyncio.ensure_future(open_socket(owner, company))
    await asyncio.sleep(0.3)
    await apply_beside(company, state("104", "ringing"))
    await apply_beside(company, state("102", "in-use"))
    await asyncio.sleep(0.1)
    release.set()
    socket = await opening
    await receive_sync(socket)  # read before both changes
    again = "".join(await receive_sync(socket))
    assert f'id="ext-{company.extensions[4].pk}" class="tile line-ringing' in again
    assert f'id="ext-{company.extensions[2].pk}" class="tile line-in-use' in again
    await socket.disconnect()


# --- the writers ---------------------------------------------------------------------------


# --- batches that waited for a busy fan-out -------------------------------------------------


def _message(seq: int, *tiles: tuple[int, str], contact: str | None = None) -> dict[str, Any]:
    payloads = [
        {
            **Extension(pk=pk, tenant_id=1, number=str(100 + pk), line=line, seq=seq).to_payload(),
            **({"contact": [contact, False]} if contact else {}),
        }
        for pk, line in tiles
    ]
    return {"type": "extensions.changed", "tiles": json.dumps(payloads)}


def test_waiting_batches_with_consecutive_numbers_go_as_one() -> None:
    messages = [
        _message(1, (1, "ringing"), contact="Anna"),
        _message(2, (2, "idle")),
        _message(3, (1, "in-use")),
        {"type": "tenant.status", "tenant_id": 1},
        _message(4, (2, "ringing")),
        _message(6, (3, "idle")),  # 5 was lost on the way
    ]
    first, status, second, third = _coalesced(messages)
    assert isinstance(first, Batch) and (first.first, first.last) == (1, 3)
    assert {e.pk: e.line for e in first.extensions} == {1: "in-use", 2: "idle"}
    assert first.ids == {1, 2}
    # The later state came without a contact: the earlier call's partner must not stay.
    assert first.contacts == {}
    assert status == {"type": "tenant.status", "tenant_id": 1}
    assert isinstance(second, Batch) and (second.first, second.last) == (4, 4)
    assert isinstance(third, Batch) and (third.first, third.last) == (6, 6)


def test_the_latest_contact_of_a_merged_batch_is_kept() -> None:
    (batch,) = _coalesced([_message(1, (1, "idle")), _message(2, (1, "ringing"), contact="Bo")])
    assert isinstance(batch, Batch)
    assert batch.contacts[1].name == "Bo"
    assert merge([batch]) is batch


async def test_a_busy_fan_out_sends_what_waited_as_one_message(
    owner: User, company: Company
) -> None:
    socket = await open_socket(owner, company)
    await receive_sync(socket)
    seq = (await Tenant.objects.aget(pk=company.tenant.pk)).event_seq
    layer = get_channel_layer()
    (channel,) = layer.groups[tenant_group(company.tenant.pk)]
    first, second = company.extensions[1], company.extensions[2]
    # Both wait before the fan-out's next round: the in-memory send does not yield.
    for number, extension in enumerate((first, second), start=seq + 1):
        extension.line, extension.seq = "ringing", number
        await layer.send(
            channel, {"type": "extensions.changed", "tiles": json.dumps([extension.to_payload()])}
        )
    pushed = await socket.receive_from()
    assert tile_ids(pushed) == {f"ext-{first.pk}", f"ext-{second.pk}"}
    assert await socket.receive_nothing(timeout=0.2)
    await socket.disconnect()


async def test_changes_within_the_push_interval_go_in_one_round(
    owner: User, company: Company, settings: Any
) -> None:
    settings.CTIBOARD_PUSH_INTERVAL = 0.3
    board = await open_socket(owner, company)
    await receive_sync(board)
    await apply(company, state("101", "ringing"))
    started = asyncio.get_running_loop().time()
    assert tile_ids(await board.receive_from()) == {f"ext-{company.extensions[1].pk}"}
    await apply(company, state("102", "ringing"))
    await apply(company, state("101", "in-use"))
    pushed = await board.receive_from(timeout=2)
    assert asyncio.get_running_loop().time() - started >= 0.25
    assert tile_ids(pushed) == {
        f"ext-{company.extensions[1].pk}",
        f"ext-{company.extensions[2].pk}",
    }
    assert await board.receive_nothing(timeout=0.4)
    await board.disconnect()


def test_rounds_space_out_past_a_thousand_sockets() -> None:
    spaced = FanOut(get_channel_layer(), interval=0.02)
    assert spaced.spacing(0) == spaced.spacing(1000) == 0.02
    assert spaced.spacing(2000) == pytest.approx(0.04)
    assert spaced.spacing(5000) == pytest.approx(0.1)


async def test_a_tenant_with_many_sockets_gets_rarer_rounds(
    company: Company, settings: Any
) -> None:
    settings.CTIBOARD_PUSH_INTERVAL = 0.05
    loop = asyncio.get_running_loop()
    rounds: list[float] = []
    second_round = asyncio.Event()

    class Socket:
        def __init__(self, number: int) -> None:
            self.channel_name = f"socket-{number}"

        def on_batch(self, batch: Batch) -> None:
            if self.channel_name == "socket-0":
                rounds.append(loop.time())
                if len(rounds) == 2:
                    second_round.set()

    sockets = [Socket(number) for number in range(3000)]
    for board in sockets:
        await fanout().subscribe(company.tenant.pk, board)
    layer = get_channel_layer()
    (channel,) = layer.groups[tenant_group(company.tenant.pk)]
    extension = company.extensions[1]
    for seq in (1, 2):
        extension.seq = seq
        message = {"type": "extensions.changed", "tiles": json.dumps([extension.to_payload()])}
        await layer.send(channel, message)
        await asyncio.sleep(0.01)
    await asyncio.wait_for(second_round.wait(), timeout=5)
    for board in sockets:
        fanout().unsubscribe(company.tenant.pk, board)
    # 3,000 sockets: three push intervals between rounds, not one.
    assert rounds[1] - rounds[0] >= 0.14


async def test_a_consumer_that_crashed_leaves_the_fan_out(
    owner: User, company: Company, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(self: Any, text_data: str | None = None, bytes_data: Any = None) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(consumers.BoardConsumer, "receive", broken)
    board = await open_socket(owner, company)
    await receive_sync(board)
    assert fanout().subscribers(company.tenant.pk) == 1
    await board.send_to(text_data="{}")
    with pytest.raises(RuntimeError):
        await board.receive_from()
    assert fanout().subscribers(company.tenant.pk) == 0


def _audience(**changes: Any) -> Audience:
    values: dict[str, Any] = {
        "known": frozenset({1, 2, 3}),
        "inactive": frozenset({3}),
        "visible": frozenset({1, 2}),
        "account": "K1",
        "crm_url_template": "",
        "country_code": "49",
        "own_extension_id": 1,
        "may_call": True,
        "details": True,
        "favourites": frozenset({2}),
        "language": "en",
    }
    return Audience(**{**values, **changes})


@pytest.mark.parametrize(
    ("name", "other"),
    [
        ("known", frozenset({1, 2})),
        ("inactive", frozenset()),
        ("visible", frozenset({1})),
        ("account", "K2"),
        ("crm_url_template", "https://crm.example/{number}"),
        ("country_code", "39"),
        ("own_extension_id", None),
        ("may_call", False),
        ("details", False),
        ("favourites", frozenset()),
        ("language", "de"),
    ],
)
def test_an_audience_differs_in_every_field_its_frames_depend_on(name: str, other: Any) -> None:
    compared = {f.name for f in dataclasses.fields(Audience) if f.compare}
    assert name in compared and len(compared) == 11  # a new field needs its case here
    same, different = _audience(), _audience(**{name: other})
    # Equal audiences share a batch's frames: the same hash (computed once) and equality.
    assert hash(same) == hash(_audience()) and same == _audience()
    assert different != same and hash(different) != hash(same)


async def test_a_users_sockets_share_the_banner_of_his_ringing_phone(
    owner: User, company: Company, monkeypatch: pytest.MonkeyPatch
) -> None:
    cookie = await sync_to_async(session_cookie)(owner)
    english = [await open_socket(owner, company, cookie=cookie) for _ in range(3)]
    german = WebsocketCommunicator(
        application,
        f"/ws/board/{company.tenant.account}/",
        headers=[
            *PAGE,
            (b"cookie", cookie),
            (b"accept-language", b"de"),
        ],
    )
    assert (await german.connect())[0]
    for board in [*english, german]:
        await receive_sync(board)
    banners: list[Any] = []
    render = consumers.render_incoming_oob

    def counted(ring: Any) -> str:
        banners.append(ring)
        return render(ring)

    monkeypatch.setattr(consumers, "render_incoming_oob", counted)

    await apply(company, state("100", "ringing"))  # the owner's own extension
    pushed = [await board.receive_from() for board in english]
    in_german = await german.receive_from()
    # One banner per language, not per socket: every socket of a user rings at once, and
    # each new frame would be deflated anew for its socket.
    assert len(banners) == 2
    assert pushed[0] == pushed[1] == pushed[2] and 'data-state="ringing"' in pushed[0]
    assert "Your phone is ringing" in pushed[0] and "Ihr Telefon klingelt" in in_german
    for board in [*english, german]:
        await board.disconnect()
