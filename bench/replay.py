"""A recorded state stream, and a minimal CTI API server that replays it at full speed.

The simulator generates traffic in Python on the same two cores as the worker, so it cannot
outrun the worker it is meant to saturate. For the ingest measure the simulator's own traffic
is recorded once (``Simulator.advance``, no real time), then served by this small asyncio
server, which writes pre-encoded SSE frames in 64 KB chunks as fast as the client reads them.

    python -m bench.replay record --extensions 5000 --events 50000 --out DIR
    python -m bench.replay serve --dir DIR [--wait-go]

``serve`` prints ``listening on http://127.0.0.1:PORT`` and answers:

- ``POST``/``PUT /login``: a token pair (an unsigned-but-valid JWT with ``exp`` in an hour);
- ``GET /extensions/phone/data``: the recorded directory;
- ``GET /extensions/phone/states`` (SSE): bootstrap + recorded changes + a sentinel state, on
  every connect (JSON snapshot: ``[]``); ``GET /extensions/phone/calls``: keepalives only;
- ``GET /_bench/stats``: when the states stream was requested, started and finished writing;
  ``POST /_bench/go``: with ``--wait-go`` the states stream waits for this before writing.
"""

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

SENTINEL_LINE = "bench-end"
ACCOUNT = "K9000"
USERNAME = "K9000/bench"
PASSWORD = "bench-replay-pw"  # noqa: S105 - a local fake API's fake credential
CHUNK = 64 * 1024


# --- recording ----------------------------------------------------------------------------


def record(extensions: int, events: int, out: Path, seed: int = 11) -> dict[str, Any]:
    """Write ``frames.sse`` (bootstrap, changes, sentinel), ``directory.json``, ``meta.json``."""
    from ctiboard.simulator.model import frame
    from ctiboard.simulator.simulator import Simulator

    simulator = Simulator(seed=seed)
    tenant = simulator.add_tenant(
        account=ACCOUNT,
        username=USERNAME,
        password=PASSWORD,
        extensions=extensions,
        traffic_rate=1000.0,
        time_scale=0.05,
    )
    subscription = tenant.state.subscribe("states")
    bootstrap = [frame(state) for state in tenant.state.states()]
    changes: list[bytes] = []
    steps = 0
    while len(changes) < events and steps < 10_000:
        simulator.advance(0.5)
        steps += 1
        while not subscription.queue.empty():
            item = subscription.queue.get_nowait()
            if isinstance(item, bytes):
                changes.append(item)
    changes = changes[:events]
    first = tenant.state.extension_list[0]
    sentinel = frame(
        {
            "extension": first.number,
            "customer": ACCOUNT,
            "presence": "available",
            "line": SENTINEL_LINE,
            "updated": "2030-01-01T00:00:00.000000000+00:00",
        }
    )
    out.mkdir(parents=True, exist_ok=True)
    with (out / "frames.sse").open("wb") as sink:
        for data in (*bootstrap, *changes, sentinel):
            sink.write(data)
    (out / "directory.json").write_text(json.dumps(tenant.state.extension_data()))
    meta = {
        "account": ACCOUNT,
        "username": USERNAME,
        "password": PASSWORD,
        "extensions": extensions,
        "bootstrap": len(bootstrap),
        "changes": len(changes),
        "frames": len(bootstrap) + len(changes) + 1,
        "sentinel_extension": first.number,
        "sentinel_line": SENTINEL_LINE,
        "bytes": (out / "frames.sse").stat().st_size,
    }
    (out / "meta.json").write_text(json.dumps(meta))
    return meta


# --- serving ------------------------------------------------------------------------------


class Replay:
    def __init__(self, directory: Path, wait_go: bool) -> None:
        self.frames = (directory / "frames.sse").read_bytes()
        self.extension_data = (directory / "directory.json").read_bytes()
        self.meta = json.loads((directory / "meta.json").read_text())
        self.go = asyncio.Event()
        if not wait_go:
            self.go.set()
        self.stats: dict[str, Any] = {
            "requested_at": None,
            "started_at": None,
            "finished_at": None,
            "bytes": 0,
            "frames": self.meta["frames"],
            "streams": 0,
        }

    def tokens(self) -> bytes:
        import jwt

        now = int(time.time())
        claims = {"sub": USERNAME, "customer": ACCOUNT, "iat": now, "exp": now + 3600}
        access = jwt.encode({**claims, "token_type": "access"}, "bench", algorithm="HS256")
        refresh = jwt.encode({**claims, "token_type": "refresh"}, "bench", algorithm="HS256")
        return json.dumps({"access-token": access, "refresh-token": refresh}).encode()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        key, value = line.split(":", 1)
                        headers[key.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0") or 0)
                if length:
                    await reader.readexactly(length)
                path = target.split("?", 1)[0]
                accept = headers.get("accept", "")
                if path == "/login" and method in ("POST", "PUT"):
                    await self.respond(writer, 200, self.tokens())
                elif path == "/extensions/phone/data" and method == "GET":
                    await self.respond(writer, 200, self.extension_data)
                elif path == "/extensions/phone/states" and method == "GET":
                    if "application/json" in accept and "event-stream" not in accept:
                        await self.respond(writer, 200, b"[]")
                    else:
                        await self.stream(writer, states=True)
                        return
                elif path == "/extensions/phone/calls" and method == "GET":
                    await self.stream(writer, states=False)
                    return
                elif path == "/_bench/stats":
                    await self.respond(writer, 200, json.dumps(self.stats).encode())
                elif path == "/_bench/go" and method == "POST":
                    self.go.set()
                    await self.respond(writer, 200, b"{}")
                else:
                    await self.respond(writer, 404, b'{"error": "not found"}')
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def respond(writer: asyncio.StreamWriter, status: int, body: bytes) -> None:
        reason = {200: "OK", 404: "Not Found"}[status]
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nX-Request-Id: bench\r\n\r\n".encode()
            + body
        )
        await writer.drain()

    async def stream(self, writer: asyncio.StreamWriter, *, states: bool) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\nX-Request-Id: bench\r\n\r\n"
        )
        await writer.drain()
        if states:
            # Every (re)connect gets the whole recording again, as a PBX sends its bootstrap
            # again: a worker that restarts its stream mid-run still ends at the sentinel, and
            # ``streams`` tells that it did.
            self.stats["streams"] += 1
            if self.stats["requested_at"] is None:
                self.stats["requested_at"] = time.time()
            await self.go.wait()
            if self.stats["started_at"] is None:
                self.stats["started_at"] = time.time()
            frames = memoryview(self.frames)
            for start in range(0, len(frames), CHUNK):
                chunk = frames[start : start + CHUNK]
                writer.write(b"%x\r\n" % len(chunk) + bytes(chunk) + b"\r\n")
                await writer.drain()
                self.stats["bytes"] += len(chunk)
            self.stats["finished_at"] = time.time()
        keepalive = b": keepalive\n\n"
        while True:
            await asyncio.sleep(1.0)
            writer.write(b"%x\r\n" % len(keepalive) + keepalive + b"\r\n")
            await writer.drain()


async def serve(directory: Path, port: int, wait_go: bool, lifetime: float) -> None:
    replay = Replay(directory, wait_go)
    server = await asyncio.start_server(replay.handle, "127.0.0.1", port)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on http://127.0.0.1:{bound}", flush=True)
    async with server:
        # Bounded: the bench stops it, and it stops by itself after ``lifetime`` seconds.
        await asyncio.sleep(lifetime)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.replay")
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("--extensions", type=int, default=5000)
    rec.add_argument("--events", type=int, default=50_000)
    rec.add_argument("--out", type=Path, required=True)
    srv = sub.add_parser("serve")
    srv.add_argument("--dir", type=Path, required=True)
    srv.add_argument("--port", type=int, default=0)
    srv.add_argument("--wait-go", action="store_true")
    srv.add_argument("--lifetime", type=float, default=900.0)
    args = parser.parse_args(argv)
    if args.command == "record":
        print(json.dumps(record(args.extensions, args.events, args.out)))
    else:
        asyncio.run(serve(args.dir, args.port, args.wait_go, args.lifetime))


if __name__ == "__main__":
    main(sys.argv[1:])
