"""The bare baseline: the simulator's state stream relayed to WebSockets with no Django.

    python -m bench.relay --sim URL --account K1000 --username U --password P [--port 0]

One asyncio process: an httpx-sse client reads ``/extensions/phone/states`` (no database, no
channel layer, no per-user filtering); every event becomes one tile (the same markup shape as
ctiboard's, with ``hx-swap-oob``), sent with ``websockets.broadcast`` to every socket at
``/ws``. ``GET /`` is a page with the same htmx and ws extension as the board and every tile; a
new socket gets the whole grid first, like the board's. It prints
``listening on http://127.0.0.1:PORT`` and stops on SIGTERM or after ``--lifetime`` seconds.
"""

import argparse
import asyncio
import contextlib
import html
import json
import signal
from pathlib import Path
from typing import Any

import httpx
from httpx_sse import aconnect_sse
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response


def _htmx_dir() -> Path:
    import django_htmx

    return Path(django_htmx.__file__).parent / "static" / "django_htmx"


STATIC = {
    "/static/htmx.min.js": "htmx-2.min.js",
    "/static/ws.min.js": "ext/hx-ws-2.min.js",
}


class Relay:
    def __init__(self, names: dict[str, str]) -> None:
        self.names = names
        self.states: dict[str, dict[str, Any]] = {}
        self.clients: set[ServerConnection] = set()
        self.events = 0

    def tile(self, number: str, oob: bool) -> str:
        state = self.states.get(number, {})
        updated = html.escape(str(state.get("updated", "")))
        line = html.escape(str(state.get("line", "unknown")))
        presence = html.escape(str(state.get("presence", "")))
        swap = ' hx-swap-oob="true"' if oob else ""
        return (
            f'<article id="ext-{number}" class="tile line-{line} presence-{presence}" '
            f'data-number="{number}"{swap}><header><span class="number">{number}</span> '
            f'<span class="name">{html.escape(self.names.get(number, ""))}</span></header>'
            f'<dl class="signals"><div class="signal line"><dt>Line</dt><dd>{line}</dd></div>'
            f'<div class="signal presence"><dt>Presence</dt><dd>{presence}</dd></div></dl>'
            f'<p class="since">since <time datetime="{updated}">{updated[11:16]}</time></p>'
            "</article>"
        )

    def grid(self, oob: bool) -> str:
        swap = ' hx-swap-oob="true"' if oob else ""
        tiles = "".join(self.tile(number, False) for number in self.names)
        # As on the board, a sync ends with the PBX status (bench.browser waits for it).
        status = f'<span id="pbx-status"{swap}></span>'
        return f'<div id="tiles" class="grid"{swap}>{tiles}</div>{status}'

    def page(self) -> str:
        return (
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>bare relay</title>'
            '<script src="/static/htmx.min.js" defer></script>'
            '<script src="/static/ws.min.js" defer></script></head><body>'
            f'<div id="live" hx-ext="ws" ws-connect="/ws">{self.grid(False)}</div></body></html>'
        )

    def handle_event(self, data: str) -> None:
        event = json.loads(data)
        number = str(event.get("extension", ""))
        if not number:
            return
        self.events += 1
        self.states[number] = event
        if self.clients:
            broadcast(self.clients, self.tile(number, True))

    async def follow(self, sim: str, account: str, username: str, password: str) -> None:
        headers = {"User-Agent": f"bench-relay/1 ({account})"}
        async with httpx.AsyncClient(base_url=sim, headers=headers, timeout=30) as client:
            while True:
                try:
                    login = await client.post(
                        "/login", json={"username": username, "password": password}
                    )
                    token = login.json()["access-token"]
                    auth = {"Authorization": f"Bearer {token}"}
                    async with aconnect_sse(
                        client,
                        "GET",
                        "/extensions/phone/states",
                        headers=auth,
                        timeout=httpx.Timeout(30, read=None),
                    ) as source:
                        async for sse in source.aiter_sse():
                            if sse.data:
                                self.handle_event(sse.data)
                except (httpx.HTTPError, KeyError, ValueError):
                    await asyncio.sleep(0.5)

    async def socket(self, connection: ServerConnection) -> None:
        await connection.send(self.grid(True))
        self.clients.add(connection)
        try:
            await connection.wait_closed()
        finally:
            self.clients.discard(connection)

    def http(self, connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/ws":
            return None
        if path == "/":
            body, kind = self.page().encode(), "text/html; charset=utf-8"
        elif path in STATIC:
            body, kind = (_htmx_dir() / STATIC[path]).read_bytes(), "text/javascript"
        elif path == "/healthz":
            body, kind = json.dumps({"events": self.events}).encode(), "application/json"
        else:
            return Response(404, "Not Found", Headers([("Content-Length", "0")]), b"")
        headers = Headers([("Content-Type", kind), ("Content-Length", str(len(body)))])
        return Response(200, "OK", headers, body)


async def main(args: argparse.Namespace) -> None:
    async with httpx.AsyncClient(
        base_url=args.sim, headers={"User-Agent": f"bench-relay/1 ({args.account})"}
    ) as client:
        login = await client.post(
            "/login", json={"username": args.username, "password": args.password}
        )
        token = login.json()["access-token"]
        listed = await client.get(
            "/extensions/phone/data", headers={"Authorization": f"Bearer {token}"}
        )
        names = {row["extension_number"]: row["name"] for row in listed.json()}
    relay = Relay(names)
    follower = asyncio.create_task(
        relay.follow(args.sim, args.account, args.username, args.password)
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with serve(
        relay.socket,
        "127.0.0.1",
        args.port,
        process_request=relay.http,
        compression=None,  # Daphne sends uncompressed frames too
        max_queue=None,
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"listening on http://127.0.0.1:{port}", flush=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), args.lifetime)
    follower.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.relay")
    parser.add_argument("--sim", required=True)
    parser.add_argument("--account", required=True)
    parser.add_argument("--username", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--lifetime", type=float, default=1800.0)
    asyncio.run(main(parser.parse_args()))
