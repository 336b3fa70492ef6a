"""The simulator app at `/` and mounted under a prefix, as the demo runs it (ASGI root_path)."""

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from ctiboard.lib.mount import PrefixMount
from ctiboard.simulator.app import build_app
from ctiboard.simulator.simulator import Simulator

PREFIX = "/pbx-simulator"
AGENT = (b"user-agent", b"ctiboard-tests/1.0 (K1000)")


@dataclass
class Reply:
    status: int = 0
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytes = b""

    def json(self) -> Any:
        return json.loads(self.body)


async def _call(
    app: Any,
    method: str,
    path: str,
    *,
    body: bytes = b"",
    headers: list[tuple[bytes, bytes]] | None = None,
    until: bytes = b"",
) -> Reply:
    """Drive ``app`` with one request; a stream is disconnected once ``until`` has arrived."""
    reply = Reply()
    disconnected = asyncio.Event()
    body_sent = False

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            reply.status = message["status"]
            reply.headers = dict(message["headers"])
        else:
            reply.body += message.get("body", b"")
            if until and until in reply.body:
                disconnected.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [AGENT, *(headers or [])],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    await asyncio.wait_for(app(scope, receive, send), timeout=5)
    return reply


async def _fallback(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 418, "headers": []})
    await send({"type": "http.response.body", "body": b"not the simulator"})


@pytest.fixture
def simulator() -> Simulator:
    simulator = Simulator(seed=1)
    simulator.add_tenant(account="K1000", username="K1000/ctiboard", password="pw", extensions=3)
    return simulator


@pytest.mark.parametrize("prefix", ["", PREFIX])
async def test_the_api_and_control_work_at_the_root_and_under_a_prefix(
    simulator: Simulator, prefix: str
) -> None:
    app = build_app(simulator)
    if prefix:
        app = PrefixMount(prefix, app, _fallback)  # type: ignore[assignment]
    credentials = json.dumps({"username": "K1000/ctiboard", "password": "pw"}).encode()

    login = await _call(app, "POST", f"{prefix}/v1/login", body=credentials)
    assert login.status == 200, login.body
    bearer = (b"authorization", f"Bearer {login.json()['access-token']}".encode())

    data = await _call(app, "GET", f"{prefix}/v1/extensions/phone/data", headers=[bearer])
    assert [entry["extension_number"] for entry in data.json()] == ["100", "101", "102"]

    stream = await _call(
        app, "GET", f"{prefix}/v1/extensions/phone/states", headers=[bearer], until=b'"102"'
    )
    assert stream.status == 200
    assert stream.headers[b"content-type"].startswith(b"text/event-stream")
    assert stream.body.count(b"data: ") == 3

    cancel = await _call(
        app, "DELETE", f"{prefix}/v1/extensions/phone/calls/not-a-uuid", headers=[bearer]
    )
    assert cancel.status == 400 and b"x-request-id" in cancel.headers

    tenants = await _call(app, "GET", f"{prefix}/_sim/tenants")
    assert [tenant["account"] for tenant in tenants.json()] == ["K1000"]


async def test_paths_outside_the_prefix_go_to_the_other_app(simulator: Simulator) -> None:
    app = PrefixMount(PREFIX, build_app(simulator), _fallback)

    for path in ("/login", "/pbx-simulatorx/login", "/"):
        assert (await _call(app, "POST", path)).status == 418
