"""Frames made once and written to many sockets: framed, or deflated once for every socket that
negotiated permessage-deflate (the wire format checked against an independent decoder, the
``websockets`` library's); Daphne's connections written to directly, over real sockets."""

import asyncio
import collections
import contextlib
import functools
import os
import socket
import zlib
from collections.abc import MutableMapping
from typing import Any

import pytest
from autobahn.websocket.compress import PerMessageDeflate, PerMessageDeflateOffer
from hypothesis import given
from hypothesis import strategies as st
from websockets.extensions.permessage_deflate import PerMessageDeflate as ClientDeflate
from websockets.frames import Frame as WireFrame
from websockets.streams import StreamReader

from ctiboard.lib.wsframes import (
    CLIENT_WINDOW_BITS,
    MAX_INFLATED_MESSAGE,
    DaphneWriter,
    Frame,
    QueueWriter,
    accept_deflate,
    daphne_protocol,
    text_frame,
)


def client_inflater() -> ClientDeflate:
    # Keeping its context, as a browser's does unless the server says otherwise.
    return ClientDeflate(False, False, 15, 15)


def decode(data: bytes, extensions: list[ClientDeflate] | None = None) -> WireFrame:
    """One server frame as a client reads it: its header, and its text inflated when the
    client negotiated deflate (``extensions``)."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = WireFrame.parse(reader.read_exact, mask=False, extensions=extensions)
    with pytest.raises(StopIteration) as done:
        next(parser)
    assert reader.at_eof()
    frame: WireFrame = done.value.value
    return frame


@given(st.text(max_size=3000))
def test_a_deflated_frame_inflates_to_its_text(text: str) -> None:
    frame = Frame(text * 30)
    assert frame.deflated[0] == 0b1100_0001  # FIN, RSV1 (deflated), text
    assert bytes(decode(frame.deflated, [client_inflater()]).data).decode() == text * 30
    assert frame.deflated is frame.deflated  # made once, for every socket


def test_frames_inflate_one_after_the_other_with_the_context_kept() -> None:
    # Each message is deflated on its own; an inflater that kept the previous messages'
    # window still reads it.
    inflater = client_inflater()
    for text in ["<article>" * 200 + str(n) for n in range(5)]:
        assert bytes(decode(Frame(text).deflated, [inflater]).data).decode() == text


@pytest.mark.parametrize("length", [0, 125, 126, 65535, 65536, 200_000])
def test_text_frames_use_the_shortest_length_form(length: int) -> None:
    data = text_frame(b"x" * length, deflated=False)
    wire = decode(data)
    assert wire.fin and not wire.rsv1 and wire.data == b"x" * length
    header = len(data) - length
    assert header == (2 if length < 126 else 4 if length < 65536 else 10)


def test_a_large_tile_round_is_a_fraction_on_the_wire() -> None:
    tile = (
        '<article id="ext-{n}" class="tile line-idle presence-available" data-seq="{n}" '
        'data-number="{n}" data-name="anna {n}" hx-swap-oob="true"><header><span '
        'class="number">{n}</span> <span class="name">Anna {n}</span></header></article>'
    )
    text = "".join(tile.format(n=1000 + n) for n in range(50))
    assert len(Frame(text).deflated) < len(text.encode()) / 5


class FakeTransport:
    """What DaphneWriter reads of a Twisted TCP transport, over a real socket."""

    TLS = False
    connected = 1
    disconnecting = 0
    _writeDisconnected = False

    def __init__(self, sock: socket.socket | None) -> None:
        self.socket = sock
        self.dataBuffer = b""
        self._tempDataBuffer: list[bytes] = []

    def write(self, data: bytes) -> None:
        self._tempDataBuffer.append(data)


class FakeProtocol:
    """Daphne's autobahn protocol as the writer uses it; ``sent`` is what went through
    autobahn (its buffered ``sendData``, or its own framing and compression)."""

    STATE_OPEN = 3
    STATE_CLOSED = 4

    def __init__(self, sock: socket.socket | None = None, compress: Any = None) -> None:
        self.state = self.STATE_OPEN
        self.sent: list[bytes] = []
        self._perMessageCompress = compress
        self.send_queue: collections.deque[Any] = collections.deque()
        self.transport = FakeTransport(sock)

    def sendData(self, data: bytes) -> None:
        self.sent.append(data)
        self.transport.write(data)

    def sendPreparedMessage(self, prepared: Any) -> None:
        self.sent.append(prepared.payloadHybi if self._perMessageCompress is None else b"?")


def deflate(window_bits: int = 15) -> PerMessageDeflate:
    """A connection's negotiated permessage-deflate, as autobahn keeps it."""
    return PerMessageDeflate(True, False, True, window_bits, CLIENT_WINDOW_BITS, 8)


def receive_all(theirs: socket.socket) -> bytes:
    theirs.setblocking(False)
    received = b""
    with contextlib.suppress(BlockingIOError):
        while chunk := theirs.recv(1 << 20):
            received += chunk
    return received


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


@pytest.mark.parametrize("compress", [None, deflate()], ids=["plain", "deflate"])
def test_an_idle_connection_gets_the_frame_at_once(compress: Any) -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        protocol = FakeProtocol(ours, compress)
        frame = Frame("<article>1</article>")
        DaphneWriter(protocol).write(frame)
        expected = frame.prepared.payloadHybi if compress is None else frame.deflated
        assert theirs.recv(1000) == expected
        assert protocol.transport._tempDataBuffer == [] and protocol.sent == []


@pytest.mark.parametrize("compress", [None, deflate()], ids=["plain", "deflate"])
def test_a_frame_behind_buffered_data_waits_its_turn(compress: Any) -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        protocol = FakeProtocol(ours, compress)
        protocol.transport._tempDataBuffer.append(b"earlier")
        frame = Frame("later")
        DaphneWriter(protocol).write(frame)
        theirs.setblocking(False)
        with pytest.raises(BlockingIOError):
            theirs.recv(1000)
        # Not by the shortcut: through autobahn and Twisted's buffer, after what waits there.
        expected = frame.prepared.payloadHybi if compress is None else frame.deflated
        assert protocol.transport._tempDataBuffer == [b"earlier", expected]


@pytest.mark.parametrize("compress", [None, deflate()], ids=["plain", "deflate"])
def test_what_the_kernel_does_not_take_is_buffered(compress: Any) -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setblocking(False)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        protocol = FakeProtocol(ours, compress)
        # Random text: deflate cannot shrink it below the socket's buffer either.
        frame = Frame(os.urandom(1_000_000).hex())
        writer = DaphneWriter(protocol)
        writer.write(frame)
        buffered = b"".join(protocol.transport._tempDataBuffer)
        received = receive_all(theirs)
        expected = frame.prepared.payloadHybi if compress is None else frame.deflated
        assert buffered and received + buffered == expected
        # What follows queues behind it instead of overtaking it.
        protocol.transport.dataBuffer = buffered
        writer.write(Frame("next"))
        assert receive_all(theirs) == b"" and len(protocol.sent) == 2


def test_sockets_that_negotiated_deflate_get_the_same_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compressors: list[Any] = []
    compressobj = zlib.compressobj

    def counted(*args: Any) -> Any:
        compressors.append(compressobj(*args))
        return compressors[-1]

    monkeypatch.setattr(zlib, "compressobj", counted)
    frame = Frame("<p>tile</p>" * 100)
    pairs = [socket.socketpair() for _ in range(3)]
    try:
        for (ours, _), compress in zip(pairs, [deflate(), deflate(), None], strict=True):
            DaphneWriter(FakeProtocol(ours, compress)).write(frame)
        first, second, plain = (receive_all(theirs) for _, theirs in pairs)
    finally:
        for pair in pairs:
            for end in pair:
                end.close()
    assert len(compressors) == 1
    assert first == second == frame.deflated
    assert plain == frame.prepared.payloadHybi


def test_a_smaller_window_is_left_to_autobahn() -> None:
    # (accept_deflate never agrees to one; another configuration of the factory might.)
    ours, theirs = socket.socketpair()
    with ours, theirs:
        protocol = FakeProtocol(ours, deflate(window_bits=10))
        DaphneWriter(protocol).write(Frame("<p>tile</p>"))
        assert protocol.sent == [b"?"] and receive_all(theirs) == b""


async def test_the_queue_writer_keeps_order_and_flushes() -> None:
    sent: list[str] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        await asyncio.sleep(0)
        sent.append(message["text"])

    writer = QueueWriter(send)
    for text in ("a", "b", "c"):
        writer.write(Frame(text))
    await writer.flush()
    assert sent == ["a", "b", "c"]
    writer.close()


async def test_the_queue_writer_stops_when_the_board_is_gone() -> None:
    async def send(message: MutableMapping[str, Any]) -> None:
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


def offer(header: str) -> PerMessageDeflateOffer:
    params: dict[str, list[str | bool]] = {}
    for part in header.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        params.setdefault(name, []).append(value or True)
    return PerMessageDeflateOffer.parse(params)


def test_a_browsers_offer_is_accepted_with_a_small_client_window() -> None:
    # What Chromium and Firefox offer.
    accept = accept_deflate([offer("permessage-deflate; client_max_window_bits")])
    assert accept is not None
    assert accept.get_extension_string() == (
        "permessage-deflate; client_no_context_takeover; client_max_window_bits=9"
    )
    assert accept.max_message_size == MAX_INFLATED_MESSAGE
    pmce = PerMessageDeflate.create_from_offer_accept(True, accept)
    assert pmce.server_max_window_bits == 15


def test_an_offer_without_window_negotiation_is_accepted_as_is() -> None:
    accept = accept_deflate([offer("permessage-deflate")])
    assert accept is not None
    assert accept.get_extension_string() == "permessage-deflate; client_no_context_takeover"


def test_offers_that_narrow_the_servers_window_are_passed_over() -> None:
    assert accept_deflate([offer("permessage-deflate; server_max_window_bits=10")]) is None
    accept = accept_deflate(
        [
            offer("permessage-deflate; server_max_window_bits=10"),
            offer("permessage-deflate; server_max_window_bits=15; server_no_context_takeover"),
        ]
    )
    assert accept is not None
    assert "server_max_window_bits=15" in accept.get_extension_string()
