"""Many idle-but-reading WebSocket clients in one process, driven over stdin/stdout.

    python -m bench.loadclients

Each command is one JSON line on stdin, each answer one JSON line on stdout:

- ``{"cmd": "connect", "url": "ws://127.0.0.1:P/ws/board/K1000/", "count": 100,
  "headers": {"Cookie": "..."}, "concurrency": 20, "first_message": true}`` opens ``count`` more
  sockets (and, with ``first_message``, waits until each received its first message, i.e. the
  server finished its connect work): ``{"open": total, "failed": n, "seconds": s}``.
- ``{"cmd": "stats"}``: ``{"open", "closed", "messages", "bytes"}``.
- ``{"cmd": "close"}``: closes every socket.

The clients are deliberately cheap, so that the server and not this process is what saturates:
an asyncio Protocol per socket that parses only frame headers, counts messages and bytes, and
answers pings (Daphne drops a client that does not). Like a browser, each offers
permessage-deflate; the server's deflated messages are counted, not inflated. The process ends
when stdin closes, and after ``--lifetime`` seconds in any case.
"""

import asyncio
import base64
import json
import os
import sys
import time
from typing import Any
from urllib.parse import urlsplit


class Client(asyncio.Protocol):
    def __init__(self, pool: "Pool", path: str, host: str, headers: dict[str, str]) -> None:
        self.pool = pool
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            # What Chromium offers.
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "\r\n"
        ).encode()
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.upgraded = False
        self.handshake: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.remaining = 0  # payload bytes of the current frame still to skip
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.pool.bytes += len(data)
        if not self.upgraded:
            self.buffer += data
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = self.buffer.split(b"\r\n", 1)[0]
            if b" 101 " not in status + b" ":
                if not self.handshake.done():
                    self.handshake.set_result(False)
                self._abort()
                return
            self.upgraded = True
            if not self.handshake.done():
                self.handshake.set_result(True)
            data, self.buffer = self.buffer[end + 4 :], b""
            if not data:
                return
        self._frames(data)

    def _frames(self, data: bytes) -> None:
        if self.remaining:
            if len(data) <= self.remaining:
                self.remaining -= len(data)
                return
            data = data[self.remaining :]
            self.remaining = 0
        if self.buffer:
            data = self.buffer + data
            self.buffer = b""
        position, size = 0, len(data)
        while position < size:
            if size - position < 2:
                self.buffer = data[position:]
                return
            first, second = data[position], data[position + 1] & 0x7F
            header = 2
            if second == 126:
                header = 4
            elif second == 127:
                header = 10
            if size - position < header:
                self.buffer = data[position:]
                return
            if second == 126:
                length = int.from_bytes(data[position + 2 : position + 4], "big")
            elif second == 127:
                length = int.from_bytes(data[position + 2 : position + 10], "big")
            else:
                length = second
            opcode = first & 0x0F
            start = position + header
            if opcode == 0x9:  # ping: answer with the same payload (masked, as a client must)
                if size - start < length:
                    self.buffer = data[position:]
                    return
                self._send(0xA, data[start : start + length])
            elif opcode == 0x8:
                self.closed = True
                self.pool.closed += 1
                self._abort()
                return
            elif first & 0x80 and opcode in (0x0, 0x1, 0x2):
                self.pool.messages += 1
                if not self.first.done():
                    self.first.set_result(None)
            position = start + length
            if position > size:
                self.remaining = position - size
                return

    def _send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        if self.transport is not None:
            self.transport.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self._send(0x8, (1000).to_bytes(2, "big"))
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            self.pool.closed += 1
        if not self.handshake.done():
            self.handshake.set_result(False)
        if not self.first.done():
            self.first.set_exception(ConnectionError("closed before the first message"))


class Pool:
    def __init__(self) -> None:
        self.clients: list[Client] = []
        self.messages = 0
        self.bytes = 0
        self.closed = 0

    async def connect_one(self, url: str, headers: dict[str, str], first: bool) -> bool:
        parts = urlsplit(url)
        loop = asyncio.get_running_loop()
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        host = parts.netloc
        try:
            _, client = await asyncio.wait_for(
                loop.create_connection(
                    lambda: Client(self, path, host, headers), parts.hostname, parts.port
                ),
                30,
            )
            if not await asyncio.wait_for(client.handshake, 60):
                return False
            self.clients.append(client)
            if first:
                await asyncio.wait_for(client.first, 120)
            return True
        except (OSError, TimeoutError, ConnectionError):
            return False

    async def connect(self, command: dict[str, Any]) -> dict[str, Any]:
        started = time.monotonic()
        semaphore = asyncio.Semaphore(int(command.get("concurrency", 20)))
        headers = dict(command.get("headers", {}))
        first = bool(command.get("first_message", True))

        async def one() -> bool:
            async with semaphore:
                return await self.connect_one(command["url"], headers, first)

        results = await asyncio.gather(*(one() for _ in range(int(command["count"]))))
        return {
            "open": self.open,
            "failed": results.count(False),
            "seconds": round(time.monotonic() - started, 3),
        }

    @property
    def open(self) -> int:
        return sum(1 for client in self.clients if not client.closed)

    def stats(self) -> dict[str, Any]:
        return {
            "open": self.open,
            "closed": self.closed,
            "messages": self.messages,
            "bytes": self.bytes,
        }

    def close(self) -> dict[str, Any]:
        for client in self.clients:
            client.close()
        self.clients = []
        return self.stats()


async def main(lifetime: float) -> None:
    pool = Pool()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    deadline = loop.time() + lifetime
    while loop.time() < deadline:
        try:
            line = await asyncio.wait_for(reader.readline(), max(0.1, deadline - loop.time()))
        except TimeoutError:
            break
        if not line:
            break
        command = json.loads(line)
        if command["cmd"] == "connect":
            answer = await pool.connect(command)
        elif command["cmd"] == "stats":
            answer = pool.stats()
        elif command["cmd"] == "close":
            answer = pool.close()
            await asyncio.sleep(0.5)
        else:
            answer = {"error": f"unknown command {command['cmd']}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    pool.close()


if __name__ == "__main__":
    lifetime = float(sys.argv[1]) if len(sys.argv) > 1 else 1800.0
    asyncio.run(main(lifetime))
