"""A tiny webhook receiver on 127.0.0.1 for tests: http.server in a thread.

It records every request (method, path with query, headers, body) and answers with the next
scripted status (200 once the script is used up). ``hang`` makes it hold requests open until
``release()``; ``hanging`` is set while one is held.
"""

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from ctiboard.webhooks import payloads


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def query(self) -> bytes:
        return urlsplit(self.path).query.encode()

    @property
    def signed_payload(self) -> bytes:
        return self.query if self.method == "GET" else self.body

    @property
    def event(self) -> str:
        return self.headers[payloads.EVENT_HEADER.lower()]

    @property
    def delivery(self) -> int:
        return int(self.headers[payloads.DELIVERY_HEADER.lower()])

    def signature_valid(self, secret: str, now: float) -> bool:
        return payloads.verify(
            secret,
            self.headers[payloads.TIMESTAMP_HEADER.lower()],
            self.signed_payload,
            self.headers[payloads.SIGNATURE_HEADER.lower()],
            now=now,
            tolerance=300,
        )


class Receiver:
    def __init__(self) -> None:
        self.received: list[Received] = []
        self.statuses: list[int] = []
        self.hang = False
        self.hanging = threading.Event()
        self._released = threading.Event()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with receiver._lock:
                    receiver.received.append(
                        Received(
                            self.command,
                            self.path,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                        )
                    )
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    hang = receiver.hang
                if hang:
                    receiver.hanging.set()
                    receiver._released.wait(30)
                with contextlib.suppress(OSError):  # the client gave up waiting
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            do_GET = do_POST = _handle

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def release(self) -> None:
        self.hang = False
        self._released.set()

    def events(self) -> list[str]:
        with self._lock:
            return [r.event for r in self.received]

    def __enter__(self) -> "Receiver":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def receiving() -> Iterator[Receiver]:
    with Receiver() as receiver:
        yield receiver
