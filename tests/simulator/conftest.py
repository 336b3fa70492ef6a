"""Fixtures for the simulator tests: one real simulator process per session, fresh tenants per
test, and small HTTP/SSE helpers that speak to it over real sockets."""

import itertools
import json
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jsonschema_rs
import pytest
import yaml

from ctiboard.simulator.control import SimulatorControl
from ctiboard.simulator.testing import SPEC, SimulatorProcess

# Reads that wait longer than this mean the expected frame is not coming: fail, do not hang.
READ_TIMEOUT = 5.0
_accounts = itertools.count(2000)


@pytest.fixture(scope="session")
def simulator() -> Iterator[SimulatorProcess]:
    # The --tenant flag is exercised here; the tests make their own tenants through /_sim/.
    with SimulatorProcess("--seed", "7", "--tenant", "K1000:K1000/ctiboard:secret:5") as process:
        yield process


@pytest.fixture
def control(simulator: SimulatorProcess) -> SimulatorControl:
    return simulator.control


class Stream:
    """Reads SSE frames from a streaming response, one `data:` frame at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.iter_lines()

    def next_raw(self) -> str:
        """The data of the next frame, skipping comment lines."""
        data: list[str] = []
        for line in self._lines:
            if line.startswith(":"):
                continue
            if not line:
                if data:
                    return "\n".join(data)
                continue
            assert line.startswith("data: "), line
            data.append(line[len("data: ") :])
        raise EOFError("the stream ended")

    def next(self) -> dict[str, Any]:
        event = json.loads(self.next_raw())
        assert isinstance(event, dict)
        return event

    def take(self, count: int) -> list[dict[str, Any]]:
        return [self.next() for _ in range(count)]

    def until(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """Frames up to and including the first one matching ``predicate``."""
        seen = []
        while True:
            event = self.next()
            seen.append(event)
            if predicate(event):
                return seen

    def ended(self) -> bool:
        """Whether the server closed the stream (no further frame arrives)."""
        try:
            self.next_raw()
        except EOFError:
            return True
        return False


@dataclass
class Tenant:
    """A tenant created for one test, with helpers to talk to the API as it."""

    account: str
    username: str
    password: str
    base_url: str
    control: SimulatorControl
    numbers: list[str]
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def user_agent(self) -> str:
        return f"ctiboard-tests/1.0 ({self.account})"

    def client(self, token: str | None = None, **headers: str) -> httpx.Client:
        all_headers = {"User-Agent": self.user_agent, **headers}
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"
        client = httpx.Client(base_url=self.base_url, headers=all_headers, timeout=READ_TIMEOUT)
        self.clients.append(client)
        return client

    def login(self) -> dict[str, str]:
        response = self.client().post(
            "/login", json={"username": self.username, "password": self.password}
        )
        assert response.status_code == 200, response.text
        tokens: dict[str, str] = response.json()
        return tokens

    def api(self, **headers: str) -> httpx.Client:
        """A client authenticated with a fresh access token."""
        return self.client(self.login()["access-token"], **headers)

    def close(self) -> None:
        for client in self.clients:
            client.close()


@pytest.fixture
def make_tenant(simulator: SimulatorProcess) -> Iterator[Callable[..., Tenant]]:
    created: list[Tenant] = []

    def make(extensions: int | list[dict[str, str]] = 5, **options: Any) -> Tenant:
        account = f"K{next(_accounts)}"
        username = f"{account}/ctiboard"
        options.setdefault("time_scale", 0.01)
        info = simulator.control.create_tenant(
            account, username, "secret", extensions=extensions, **options
        )
        assert info["account"] == account
        numbers = [state["extension"] for state in simulator.control.states(account)]
        tenant = Tenant(account, username, "secret", simulator.api_url, simulator.control, numbers)
        created.append(tenant)
        return tenant

    yield make
    for tenant in created:
        tenant.close()
        simulator.control.delete_tenant(tenant.account)


@pytest.fixture
def tenant(make_tenant: Callable[..., Tenant]) -> Tenant:
    return make_tenant()


def open_stream(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Stream:
    """Open an SSE request; returns once the headers are in, i.e. the server has subscribed."""
    request = client.build_request(method, path, **kwargs)
    response = client.send(request, stream=True)
    assert response.status_code == 200, response.read()
    assert response.headers["content-type"].startswith("text/event-stream")
    return Stream(response)


_SPEC = yaml.safe_load(SPEC.read_text())
_VALIDATORS = {
    name: jsonschema_rs.Draft4Validator(
        {"$ref": f"#/components/schemas/{name}", "components": _SPEC["components"]},
        validate_formats=True,
    )
    for name in ("state", "call", "extensionData", "tokens", "publicKey", "error")
}
ACCOUNT = re.compile(r"^K[0-9A-Za-z]+$")
RFC3339_NANOS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}[+-]\d\d:\d\d$")


def assert_matches_spec(schema: str, instance: Any) -> None:
    """``instance`` conforms to the official spec's component schema ``schema``.

    The spec's context enums list the placeholder ``<K-Account>`` for the tenant's account.
    """
    if isinstance(instance, dict):
        instance = {
            key: "<K-Account>" if key.endswith("_context") and ACCOUNT.match(value) else value
            for key, value in instance.items()
        }
    errors = [error.message for error in _VALIDATORS[schema].iter_errors(instance)]
    assert not errors, (instance, errors)
    if isinstance(instance, dict) and "updated" in instance:
        assert RFC3339_NANOS.match(instance["updated"]), instance["updated"]


class RawStream:
    """An SSE request over a bare socket (HTTP/1.0, so the body is not chunked): lets a test
    observe silence with a read timeout and keep reading afterwards, which httpx cannot."""

    def __init__(self, tenant: Tenant, token: str, path: str) -> None:
        url = httpx.URL(tenant.base_url)
        self.socket = socket.create_connection((url.host, url.port or 80), timeout=READ_TIMEOUT)
        request = (
            f"GET {url.path.rstrip('/')}{path} HTTP/1.0\r\nHost: {url.host}\r\n"
            f"Authorization: Bearer {token}\r\n"
            f"User-Agent: {tenant.user_agent}\r\nAccept: text/event-stream\r\n\r\n"
        )
        self.socket.sendall(request.encode())
        received = b""
        while b"\r\n\r\n" not in received:
            received += self.read()
        head, _, self.pending = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200"), head

    def read(self, timeout: float = READ_TIMEOUT) -> bytes:
        """The next bytes; raises TimeoutError after ``timeout`` seconds of silence."""
        self.socket.settimeout(timeout)
        chunk = self.socket.recv(65536)
        if not chunk:
            raise EOFError("the server closed the stream")
        return chunk

    def read_until(self, marker: bytes) -> bytes:
        received, self.pending = self.pending, b""
        while marker not in received:
            received += self.read()
        return received

    def close(self) -> None:
        self.socket.close()
