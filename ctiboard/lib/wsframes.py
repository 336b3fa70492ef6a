"""WebSocket messages written to many sockets at the cost of one.

A pushed batch goes to every board socket of a tenant. Through Channels and Daphne each socket
would encode the text to UTF-8, frame it and queue it again (``send`` → ``handle_reply`` →
``serverSend`` → ``sendMessage``); a ``Frame`` is encoded and framed once (autobahn's
``PreparedMessage``, made for broadcast), and under Daphne the writer hands it straight to the
connection's autobahn protocol. Under any other ASGI server (the test communicator, uvicorn)
the writer sends through ASGI as usual, from a queue of its own that keeps the socket's
messages in order.

Browsers offer permessage-deflate (RFC 7692), and Daphne accepts it here (``DirectFrames``): a
round's message, a run of tiles of the same markup, deflates well, and copying frames into the
kernel is most of a busy process's work. A ``Frame`` is deflated once, not per connection, and
without reference to earlier messages, which any permessage-deflate receiver decodes whatever
context it keeps: the same bytes go to every socket that negotiated the full window. Figures:
bench/README.md, section "WebSocket frames and permessage-deflate".

The writers are called from the event loop's thread only; under Daphne that is also the
Twisted reactor's thread (asyncioreactor), so writing to the protocol there is what Daphne's
own ``handle_reply`` does.
"""

import asyncio
import functools
import logging
import struct
import sys
import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

from .metrics import SOCKET_WRITERS

logger = logging.getLogger(__name__)

ASGISend = Callable[[MutableMapping[str, Any]], Awaitable[None]]

# The scope key under which the outermost middleware leaves Daphne's protocol object.
SCOPE_KEY = "ctiboard.daphne_protocol"

# Deflate's largest window, the one a client allows unless it says otherwise: a frame
# compressed with it suits every connection that did not ask for a smaller one.
DEFLATE_WINDOW_BITS = 15
# zlib's level 6 (its default): a round's message is deflated once per process, so a smaller
# frame is worth the time (bench/README.md, "WebSocket frames and permessage-deflate").
DEFLATE_LEVEL = 6
# What a browser sends a board socket is a view of a few hundred bytes
# (BoardConsumer.receive ignores more than 2,000): inflated, more than this closes the socket.
MAX_INFLATED_MESSAGE = 64 * 1024
# The window the client compresses its messages with: rare and tiny, so the connection's
# inflater stays small (bench/README.md, "WebSocket frames and permessage-deflate").
CLIENT_WINDOW_BITS = 9


def text_frame(payload: bytes, *, deflated: bool) -> bytes:
    """One unmasked, final text frame (RFC 6455 5.2); RSV1 marks a deflated payload."""
    first = 0x81 | (0x40 if deflated else 0)
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", first, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", first, 126, length)
    else:
        header = struct.pack("!BBQ", first, 127, length)
    return header + payload


class Frame:
    """One text message; its UTF-8 bytes, its framing and its deflated frame are each made
    once, on first use."""

    __slots__ = ("_deflated", "_prepared", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._prepared: Any = None
        self._deflated: bytes | None = None

    @property
    def deflated(self) -> bytes:
        """The whole frame, deflated as one permessage-deflate message with no context."""
        if self._deflated is None:
            compressor = zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, -DEFLATE_WINDOW_BITS)
            payload = compressor.compress(self.text.encode()) + compressor.flush(zlib.Z_SYNC_FLUSH)
            # RFC 7692 7.2.1: the flush's empty block ends in 00 00 ff ff, which is left out.
            self._deflated = text_frame(payload[:-4], deflated=True)
        return self._deflated

    @property
    def prepared(self) -> Any:
        if self._prepared is None:
            from autobahn.websocket.protocol import PreparedMessage

            # A server's frames are not masked; compression stays possible: autobahn
            # compresses per connection from the kept payload where the shared deflated
            # frame does not suit (a connection that negotiated a smaller window).
            self._prepared = PreparedMessage(
                self.text.encode(), isBinary=False, applyMask=False, doNotCompress=False
            )
        return self._prepared

    def __len__(self) -> int:
        return len(self.text)


class SocketWriter(Protocol):
    def write(self, frame: Frame) -> None:
        """Queue ``frame`` after everything written before (never blocks)."""

    async def flush(self) -> None:
        """Return once everything written so far has been handed to the server."""

    def close(self) -> None:
        """Drop what is still queued; the socket is gone."""


class DaphneWriter:
    """Writes prepared frames to Daphne's autobahn protocol of one connection.

    Twisted's ``transport.write`` only buffers: it registers the socket for writing with the
    event loop (an ``epoll_ctl``), sends on the next iteration and unregisters it again (a
    second one), per frame and socket (the cost: bench/README.md, "WebSocket frames and
    permessage-deflate"). When nothing is buffered on a plain TCP connection, the frame goes
    to the socket at once, as asyncio's own transports do; whatever the kernel does not take
    (a slow reader), and every frame after it, takes Twisted's buffered path, so the order
    stays.
    """

    __slots__ = ("deflate", "protocol", "socket")

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol
        # Whether the connection takes the shared deflated frames: known once the handshake
        # is done (the writer is made before the socket is accepted), so on the first write.
        self.deflate: bool | None = None
        self.socket = _plain_tcp_socket(protocol.transport)

    def write(self, frame: Frame) -> None:
        protocol = self.protocol
        # Closing or closed: what Daphne's handle_reply would drop too.
        if protocol is None or protocol.state != protocol.STATE_OPEN:
            return
        deflate = self.deflate
        if deflate is None:
            deflate = self.deflate = _takes_shared_deflate(protocol)
            if not deflate and getattr(protocol, "_perMessageCompress", None) is not None:
                self.socket = None  # autobahn compresses for this one; it writes too
        if deflate:
            data = frame.deflated
        elif self.socket is None:
            protocol.sendPreparedMessage(frame.prepared)
            return
        else:
            data = frame.prepared.payloadHybi
        sock = self.socket
        if sock is not None and not protocol.send_queue and _idle(protocol.transport):
            try:
                sent = sock.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                # Gone: Twisted's own write notices and closes the connection in order.
                sent = 0
            if sent == len(data):
                return
            data = data[sent:] if sent else data
        protocol.sendData(data)

    async def flush(self) -> None:
        return None

    def close(self) -> None:
        self.protocol = None


def _plain_tcp_socket(transport: Any) -> Any | None:
    """The socket of a Twisted TCP connection without TLS that can be written to directly,
    or None. (Its registered producer, Daphne's HTTP channel, is only paused by a buffer
    that grows.)"""
    if getattr(transport, "TLS", True) is not False:
        return None
    for name in ("connected", "disconnecting", "_writeDisconnected", "_tempDataBuffer"):
        if not hasattr(transport, name):
            return None
    if not isinstance(getattr(transport, "dataBuffer", None), bytes):
        return None
    return getattr(transport, "socket", None)


def _idle(transport: Any) -> bool:
    """Connected, and nothing waits in Twisted's buffers."""
    return (
        transport.connected
        and not transport.disconnecting
        and not transport._writeDisconnected
        and not transport._tempDataBuffer
        and not transport.dataBuffer
    )


def _takes_shared_deflate(protocol: Any) -> bool:
    """The connection negotiated permessage-deflate with the full window for our frames."""
    from autobahn.websocket.compress import PerMessageDeflate

    compress = getattr(protocol, "_perMessageCompress", None)
    return (
        isinstance(compress, PerMessageDeflate)
        and compress.server_max_window_bits == DEFLATE_WINDOW_BITS
    )


def accept_deflate(offers: list[Any]) -> Any | None:
    """autobahn's ``perMessageCompressionAccept``: the first permessage-deflate offer that
    leaves the server the full window, or None (the socket runs uncompressed)."""
    from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept

    for offer in offers:
        if not isinstance(offer, PerMessageDeflateOffer):
            continue
        if offer.request_max_window_bits not in (0, DEFLATE_WINDOW_BITS):
            continue
        return PerMessageDeflateOfferAccept(
            offer,
            request_no_context_takeover=offer.accept_no_context_takeover,
            request_max_window_bits=CLIENT_WINDOW_BITS if offer.accept_max_window_bits else 0,
            max_message_size=MAX_INFLATED_MESSAGE,
        )
    return None


class QueueWriter:
    """Sends through the ASGI ``send`` callable, one message after the other, in order."""

    def __init__(self, send: ASGISend) -> None:
        self._send = send
        self._queue: asyncio.Queue[Frame] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def write(self, frame: Frame) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())
        self._queue.put_nowait(frame)

    async def _drain(self) -> None:
        while True:
            # Only the text is kept while sending: a frame held here between messages would
            # keep a socket's last grid (hundreds of KB) alive.
            text = (await self._queue.get()).text
            try:
                await self._send({"type": "websocket.send", "text": text})
            except Exception:  # the connection went away under us; nothing more to send
                logger.debug("a queued socket message could not be sent", exc_info=True)
                self._discard()
                return
            finally:
                self._queue.task_done()
                del text

    def _discard(self) -> None:
        while not self._queue.empty():
            self._queue.get_nowait()
            self._queue.task_done()

    async def flush(self) -> None:
        await self._queue.join()

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self._discard()


def daphne_protocol(send: Any) -> Any | None:
    """Daphne's protocol object behind its ASGI ``send`` (``partial(Server.handle_reply,
    protocol)``), or None for any other server."""
    server_module = sys.modules.get("daphne.server")
    if server_module is None or not isinstance(send, functools.partial) or not send.args:
        return None
    owner = getattr(send.func, "__self__", None)
    if not isinstance(owner, server_module.Server):
        return None
    protocol = send.args[0]
    if not hasattr(protocol, "sendPreparedMessage") or not hasattr(protocol, "STATE_OPEN"):
        return None
    return protocol


def writer_for(scope: MutableMapping[str, Any], send: ASGISend) -> SocketWriter:
    protocol = scope.get(SCOPE_KEY)
    if protocol is not None:
        SOCKET_WRITERS.labels("direct").inc()
        return DaphneWriter(protocol)
    SOCKET_WRITERS.labels("queued").inc()
    return QueueWriter(send)


class DirectFrames:
    """ASGI middleware, outermost for ``websocket``: leaves Daphne's protocol in the scope.

    Middlewares further in wrap ``send`` in closures of their own; only the outermost one
    still sees the callable Daphne passed.
    """

    def __init__(self, app: Any, *, compress: bool = True) -> None:
        self.app = app
        self.compress = compress

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            protocol = daphne_protocol(send)
            if protocol is not None:
                scope = {**scope, SCOPE_KEY: protocol}
                if self.compress:
                    # autobahn negotiates extensions when the application accepts the socket,
                    # after this, from the protocol's own copy of the factory's options.
                    protocol.perMessageCompressionAccept = accept_deflate
        await self.app(scope, receive, send)
