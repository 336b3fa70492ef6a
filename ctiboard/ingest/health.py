"""The worker's own health: ``/healthz`` and ``/metrics`` on ``CTIBOARD_METRICS_PORT``.

``/healthz`` answers 200 while the worker's last successful heartbeat (a lease round against
the database) is younger than its ``dead_after`` and a message last made the round trip
through the channel layer within ``LAYER_STALE_AFTER``; else 503 and why. The container health
check probes it, so a worker cut off from PostgreSQL or Redis shows as unhealthy.
"""

import asyncio
import contextlib
import threading
import time
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from channels.layers import get_channel_layer
from prometheus_client import REGISTRY, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from ctiboard.lib.operator import CHALLENGE, is_operator

LAYER_PROBE_INTERVAL = 5.0
LAYER_STALE_AFTER = 3 * LAYER_PROBE_INTERVAL


class WorkerHealth:
    """What the supervisor last achieved, in monotonic time (read from the HTTP thread)."""

    def __init__(self) -> None:
        self.dead_after = 3.0
        self.heartbeat_at: float | None = None
        self.layer_at: float | None = None
        self.layer_error = "no round trip yet"

    def problems(self, now: float | None = None) -> list[str]:
        now = time.monotonic() if now is None else now
        problems = []
        if self.heartbeat_at is None or now - self.heartbeat_at > self.dead_after:
            problems.append(f"database: no heartbeat within {self.dead_after:.0f}s")
        if self.layer_at is None or now - self.layer_at > LAYER_STALE_AFTER:
            problems.append(f"channel layer: {self.layer_error}")
        return problems


HEALTH = WorkerHealth()


async def layer_round_trip(prefix: str) -> dict[str, Any]:
    """Send a message to a fresh channel and receive it (what ``/readyz`` checks too)."""
    layer = get_channel_layer()
    if layer is None:
        return {"ok": False, "error": "no channel layer configured"}
    channel = await layer.new_channel(prefix)
    started = time.perf_counter()
    receiver = asyncio.ensure_future(layer.receive(channel))
    try:
        # Pub/sub delivers only once the subscription is in place on the server: resend
        # rather than fail on a first message that overtook it.
        for _ in range(4):
            await layer.send(channel, {"type": "probe.ping"})
            done, _ = await asyncio.wait({receiver}, timeout=0.5)
            if done:
                break
        else:
            return {"ok": False, "error": "a message sent through the layer never came back"}
    finally:
        if not receiver.done():
            receiver.cancel()  # also drops the probe's subscription
            await asyncio.gather(receiver, return_exceptions=True)
    message = receiver.result()
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    # The layer API cannot drop a channel; the Redis pub/sub layer unsubscribes one whose
    # receive is cancelled, so cancel one, or every probe leaves a subscription behind.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(layer.receive(channel), 0.01)
    if message.get("type") != "probe.ping":
        return {"ok": False, "error": f"unexpected message {message.get('type')!r}"}
    return {"ok": True, "backend": type(layer).__name__, "round_trip_ms": elapsed_ms}


async def probe_layer_forever(health: WorkerHealth = HEALTH) -> None:
    while True:
        try:
            result = await asyncio.wait_for(layer_round_trip("workerhealth."), 3.0)
        except Exception as exc:
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        if result["ok"]:
            health.layer_at = time.monotonic()
        else:
            health.layer_error = result["error"]
        await asyncio.sleep(LAYER_PROBE_INTERVAL)


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # probed every few seconds: not worth a log line each


def serve(
    port: int, addr: str, token: str | None, health: WorkerHealth = HEALTH
) -> ThreadingWSGIServer:
    """Serve ``/healthz`` to anyone and ``/metrics`` to the operator (lib/operator.py: the
    bearer ``token``, or loopback callers without one) in a daemon thread."""
    metrics = make_wsgi_app(REGISTRY)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") != "/healthz":
            if not is_operator(
                environ.get("HTTP_AUTHORIZATION", ""), environ.get("REMOTE_ADDR", ""), token
            ):
                start_response(
                    "401 Unauthorized",
                    [("Content-Type", "text/plain"), ("WWW-Authenticate", CHALLENGE)],
                )
                return [b"401 Unauthorized\n"]
            return metrics(environ, start_response)
        problems = health.problems()
        status = "503 Service Unavailable" if problems else "200 OK"
        start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
        return [("\n".join(problems) or "ok").encode() + b"\n"]

    server = make_server(addr, port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True, name="worker-http").start()
    return server
