"""Run an ASGI application under Daphne, with background coroutines on the same event loop.

The demo runs board, simulator and worker in one process; the in-memory channel layer only
works when producer and consumers share one event loop, so background work is started on
Daphne's loop rather than in a thread of its own.
"""

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

logger = logging.getLogger(__name__)

BackgroundFactory = Callable[[], Coroutine[Any, Any, None]]

# Daphne's default (1 MiB) caps WebSocket messages in both directions: autobahn refuses to
# *send* a larger one too, and the socket closes with 1011. The board sends its grid in parts
# well below 1 MiB (board.rendering.MESSAGE_BUDGET), so this is headroom, not a requirement;
# what browsers send is a few hundred bytes (BoardConsumer.receive ignores more than 2,000).
# The frame size cap is left at 1 MiB: autobahn checks it on received frames only. The
# Dockerfile passes the same to the daphne command line.
WEBSOCKET_MAX_MESSAGE_SIZE = 16 * 2**20


def serve(
    application: Any,
    *,
    host: str,
    port: int,
    background: Iterable[BackgroundFactory] = (),
    on_listening: Callable[[str, int], None] | None = None,
    shutdown_timeout: float = 10.0,
) -> None:
    """Serve until SIGINT/SIGTERM; background tasks are cancelled and awaited on shutdown."""
    # daphne.server installs the asyncio reactor on import; it has to come before Twisted.
    from daphne.endpoints import build_endpoint_description_strings
    from daphne.server import Server
    from twisted.internet import defer, reactor

    tasks: list[asyncio.Task[None]] = []

    def report_crash(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("background task %s died", task.get_name(), exc_info=task.exception())

    def start_background() -> None:
        loop = asyncio.get_event_loop()
        for factory in background:
            task = loop.create_task(factory(), name=getattr(factory, "__name__", "background"))
            task.add_done_callback(report_crash)
            tasks.append(task)

    async def stop_background() -> None:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=shutdown_timeout)

    def before_shutdown() -> defer.Deferred[None]:
        return defer.Deferred.fromFuture(asyncio.ensure_future(stop_background()))

    class _Server(Server):  # type: ignore[misc]
        def listen_success(self, listening_port: Any) -> None:
            super().listen_success(listening_port)
            address = listening_port.getHost()
            if on_listening is not None:
                on_listening(address.host, address.port)

    reactor.callWhenRunning(start_background)  # type: ignore[attr-defined]
    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)  # type: ignore[attr-defined,arg-type]
    _Server(
        application,
        endpoints=build_endpoint_description_strings(host=host, port=port),
        signal_handlers=True,
        application_close_timeout=shutdown_timeout,
        websocket_max_message_size=WEBSOCKET_MAX_MESSAGE_SIZE,
    ).run()
