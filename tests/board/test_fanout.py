"""The process's fan-out: one tenant subscription for all its sockets, batches taken while a
socket syncs, and frames written once for many sockets."""

import asyncio
import functools
import threading
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.contrib.auth.models import User
from django.db import close_old_connections

from ctiboard.board import consumers
from ctiboard.board.fanout import fanout
from ctiboard.cti.events import StateEvent
from ctiboard.lib.wsframes import DaphneWriter, Frame, QueueWriter, daphne_protocol
from ctiboard.pbx import store
from ctiboard.pbx.events import tenant_group
from tests.board.test_consumer import apply, session_cookie, state, tile_ids
from tests.board.test_socket_sync import open_socket, receive_sync
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
    for socket in sockets:
        await receive_sync(socket)

    members = layer.groups.get(tenant_group(company.tenant.pk), {})
    assert len(members) == 1 and next(iter(members)).startswith("fanout.")
    assert fanout().subscribers(company.tenant.pk) == 3
    assert fanout().subscribers(other_company.tenant.pk) == 1

    await apply(company, state("102", "in-use"))
    for socket in sockets[:3]:
        assert tile_ids(await socket.receive_from()) == {f"ext-{company.extensions[2].pk}"}
    assert await sockets[3].receive_nothing(timeout=0.2)

    for socket in sockets:
        await socket.disconnect()
    await asyncio.sleep(0.05)  # the last socket's leaving closes the subscription
    assert fanout().subscribers(company.tenant.pk) == 0
    assert not layer.groups.get(tenant_group(company.tenant.pk))


def _slow_load(monkeypatch: pytest.MonkeyPatch, *, after_read: bool) -> threading.Event:
    """Hold every socket's database load, before or after it read the state, until set."""
    release = threading.Event()
    original = consumers.BoardConsumer.__dict__["_load"].func

    @functools.wraps(original)
    def load(self: consumers.BoardConsumer, page: Any) -> Any:
        if not after_read:
            assert release.wait(10)
        sync = original(self, page)
        if after_read:
            assert release.wait(10)
        return sync

    monkeypatch.setattr(consumers.BoardConsumer, "_load", consumers.database_sync_to_async(load))
    return release


async def apply_beside(company: Company, *events: StateEvent) -> None:
    """``apply`` from a thread of its own: the socket's load holds the shared one."""

    def write() -> None:
        try:
            tenant_state = store.load_state(company.tenant.pk)
            tenant_state.account = company.tenant.account
            store.apply_states(tenant_state, list(events))
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


class FakeProtocol:
    STATE_OPEN = 3
    STATE_CLOSED = 4

    def __init__(self) -> None:
        self.state = self.STATE_OPEN
        self.sent: list[bytes] = []

    def sendPreparedMessage(self, prepared: Any) -> None:
        self.sent.append(prepared.payloadHybi)


def test_a_frame_is_one_unmasked_text_frame_made_once() -> None:
    text = "<article>ü</article>" * 20  # 2-byte length, non-ASCII
    frame = Frame(text)
    wire = frame.prepared.payloadHybi
    assert frame.prepared is frame.prepared
    payload = text.encode()
    assert wire[0] == 0x81  # FIN, text
    assert wire[1] == 126 and int.from_bytes(wire[2:4], "big") == len(payload)  # no mask bit
    assert wire[4:] == payload


def test_the_daphne_writer_writes_while_open_only() -> None:
    protocol = FakeProtocol()
    writer = DaphneWriter(protocol)
    frame = Frame("one")
    writer.write(frame)
    protocol.state = protocol.STATE_CLOSED
    writer.write(Frame("two"))
    assert protocol.sent == [frame.prepared.payloadHybi]
    writer.close()
    protocol.state = protocol.STATE_OPEN
    writer.write(Frame("three"))
    assert len(protocol.sent) == 1


async def test_the_queue_writer_keeps_order_and_flushes() -> None:
    sent: list[str] = []

    async def send(message: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        sent.append(message["text"])

    writer = QueueWriter(send)
    for text in ("a", "b", "c"):
        writer.write(Frame(text))
    await writer.flush()
    assert sent == ["a", "b", "c"]
    writer.close()


async def test_the_queue_writer_stops_when_the_socket_is_gone() -> None:
    async def send(message: dict[str, Any]) -> None:
        raise OSError("gone")

    writer = QueueWriter(send)
    writer.write(Frame("a"))
    writer.write(Frame("b"))
    await asyncio.wait_for(writer.flush(), 1)


def test_daphnes_protocol_is_found_behind_its_send_only() -> None:
    from daphne.server import Server

    server = Server.__new__(Server)
    protocol = FakeProtocol()
    assert daphne_protocol(functools.partial(server.handle_reply, protocol)) is protocol
    assert daphne_protocol(functools.partial(print, protocol)) is None
    assert daphne_protocol(lambda message: None) is None
