"""WebSocket messages written to many sockets at the cost of one.

A pushed batch goes to every board socket of a tenant. Through Channels and Daphne each socket
would encode the text to UTF-8, frame it and queue it again (``send`` → ``handle_reply`` →
``serverSend`` → ``sendMessage``); a ``Frame`` is encoded and framed once (autobahn's
``PreparedMessage``, made for broadcast), and under Daphne the writer hands it straight to the
connection's autobahn protocol. Under any other ASGI server (the test communicator, uvicorn)
the writer sends through ASGI as usual, from a queue of its own that keeps the socket's
messages in order.

The writers are called from the event loop's thread only; under Daphne that is also the
Twisted reactor's thread (asyncioreactor), so writing to the protocol there is what Daphne's
own ``handle_reply`` does.
"""

import asyncio
import functools
import logging
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

logger = logging.getLogger(__name__)

ASGISend = Callable[[MutableMapping[str, Any]], Awaitable[None]]

# The scope key under which the outermost middleware leaves Daphne's protocol object.
SCOPE_KEY = "ctiboard.daphne_protocol"


class Frame:
    """One text message; its UTF-8 bytes and WebSocket framing are made once, on first use."""

    __slots__ = ("_prepared", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._prepared: Any = None

    @property
    def prepared(self) -> Any:
        if self._prepared is None:
            from autobahn.websocket.protocol import PreparedMessage

            # A server's frames are not masked; compression stays possible (autobahn then
            # compresses per connection from the kept payload; Daphne negotiates none).
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
    second one). For a thousand sockets per batch that was most of a core. When nothing is
    buffered on a plain TCP connection, the frame goes to the socket at once, as asyncio's
    own transports do; whatever the kernel does not take (a slow reader), and every frame
    after it, takes Twisted's buffered path, so the order stays.
    """

    __slots__ = ("protocol",)

    def __init__(self, protocol: Any) -> None:
        self.protocol = protocol

    def write(self, frame: Frame) -> None:
        protocol = self.protocol
        # Closing or closed: what Daphne's handle_reply would drop too.
        if protocol is None or protocol.state != protocol.STATE_OPEN:
            return
        prepared = frame.prepared
        transport = protocol.transport
        if (
            getattr(protocol, "_perMessageCompress", None) is None
            and not getattr(protocol, "send_queue", True)
            and _idle_plain_tcp(transport)
        ):
            data = prepared.payloadHybi
            try:
                sent = transport.socket.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                # Gone: Twisted's own write notices and closes the connection in order.
                sent = 0
            if sent < len(data):
                transport.write(data[sent:] if sent else data)
            return
        protocol.sendPreparedMessage(prepared)

    async def flush(self) -> None:
        return None

    def close(self) -> None:
        self.protocol = None


def _idle_plain_tcp(transport: Any) -> bool:
    """A Twisted TCP connection without TLS and with nothing waiting in its buffers.

    (Its registered producer, Daphne's HTTP channel, is only paused by a buffer that grows.)
    """
    return (
        getattr(transport, "TLS", True) is False
        and getattr(transport, "connected", False)
        and not getattr(transport, "disconnecting", True)
        and not getattr(transport, "_writeDisconnected", True)
        and getattr(transport, "_tempDataBuffer", None) == []
        and getattr(transport, "dataBuffer", None) == b""
        and hasattr(transport, "socket")
    )


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
    from ctiboard.ops.metrics import SOCKET_WRITERS

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

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            protocol = daphne_protocol(send)
            if protocol is not None:
                scope = {**scope, SCOPE_KEY: protocol}
        await self.app(scope, receive, send)
