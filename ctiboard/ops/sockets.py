"""Open WebSockets: counted for /metrics, and closed with 1012 when the server shuts down.

A web process that stops (a deploy, a scale-down) must tell its browsers to come back rather
than let their connections vanish: close code 1012 (Service Restart) makes the htmx ws
extension reconnect with backoff — through the proxy, to a process that is still up — and the
consumer sends the full current state on connect, so nothing missed in between stays missed.

How: every accepted socket is kept in a process-local registry. On the first accept inside
Daphne, a Twisted "before shutdown" trigger is registered (Daphne's own shutdown hooks are
of that kind); on SIGTERM it sends 1012 on every open socket and waits, briefly, for the close
handshakes, before the reactor drops the connections. Daphne's own shutdown step only cancels
the application instances, and in Daphne 4.2 it can fail before doing so (a KeyError on a
connection already reaped); a cancelled socket also gets its 1012 here, as a fallback.

Autobahn, under Daphne, refuses to *send* any close code but 1000 and 3000-4999 (it reads
RFC 6455's registry as "not for applications"), although 1012 is defined for exactly this and
browsers act on it. ``_allow_service_restart`` lets Daphne send 1001, 1012 and 1013 through
Autobahn's lower-level ``sendCloseFrame``; every other code takes the usual path.
"""

import asyncio
import logging
import sys
from dataclasses import dataclass, field
from typing import Any

from ctiboard.lib.metrics import SOCKETS_OPEN

logger = logging.getLogger(__name__)

CLOSE_SERVICE_RESTART = 1012
# How long a stopping process waits for browsers to answer its close frames.
SHUTDOWN_GRACE = 3.0


@dataclass(eq=False)
class _Socket:
    send: Any
    closed: bool = False
    gone: asyncio.Event = field(default_factory=asyncio.Event)

    async def close(self, code: int) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            await self.send({"type": "websocket.close", "code": code})
        except Exception:  # the connection may be half gone; the close is best effort
            logger.debug("could not close a socket with %d", code, exc_info=True)


_open: set[_Socket] = set()
_hook_installed = False


async def close_all(code: int = CLOSE_SERVICE_RESTART, grace: float = SHUTDOWN_GRACE) -> int:
    """Close every open socket of this process; returns how many there were."""
    sockets = list(_open)
    if not sockets:
        return 0
    logger.info("closing %d board socket(s) with %d", len(sockets), code)
    for socket in sockets:
        await socket.close(code)
    waits = [asyncio.ensure_future(socket.gone.wait()) for socket in sockets]
    _, pending = await asyncio.wait(waits, timeout=grace)
    for wait in pending:
        wait.cancel()
    return len(sockets)


def _install_shutdown_hook() -> None:
    """Register close_all with the Twisted reactor Daphne runs on, once per process."""
    global _hook_installed
    # Importing the reactor would install Twisted's default one: only use it when the
    # server that imported us (Daphne) has installed it already.
    if _hook_installed or "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import defer, reactor

    _allow_service_restart()

    def before_shutdown() -> "defer.Deferred[int]":
        return defer.Deferred.fromFuture(asyncio.ensure_future(close_all()))

    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)  # type: ignore[attr-defined,arg-type]
    _hook_installed = True


# Registered close codes a server sends when it goes away or restarts (RFC 6455, IANA).
_SERVER_CODES = frozenset({1001, 1012, 1013})


def _allow_service_restart() -> None:
    protocol_module = sys.modules.get("daphne.ws_protocol")
    if protocol_module is None:
        return
    protocol = protocol_module.WebSocketProtocol
    if getattr(protocol.serverClose, "ctiboard", False):
        return
    original = protocol.serverClose

    def server_close(self: Any, code: int | None = None) -> None:
        if code in _SERVER_CODES:
            self.sendCloseFrame(code=code, isReply=False)
        else:
            original(self, code)

    server_close.ctiboard = True  # type: ignore[attr-defined]
    protocol.serverClose = server_close


class GracefulWebSockets:
    """ASGI middleware for the ``websocket`` scope type."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        socket = _Socket(send)
        accepted = False

        async def tracked_receive() -> Any:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                socket.closed = True
            return message

        async def tracked_send(message: Any) -> None:
            nonlocal accepted
            if message["type"] == "websocket.accept" and not accepted:
                accepted = True
                SOCKETS_OPEN.inc()
                _open.add(socket)
                _install_shutdown_hook()
            elif message["type"] == "websocket.close":
                socket.closed = True
            await send(message)

        try:
            await self.app(scope, tracked_receive, tracked_send)
        except asyncio.CancelledError:
            if accepted:
                await socket.close(CLOSE_SERVICE_RESTART)
            raise
        finally:
            if accepted:
                _open.discard(socket)
                socket.gone.set()
                SOCKETS_OPEN.dec()
