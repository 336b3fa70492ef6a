"""Board sockets of the demo under Daphne, where pushed batches are written straight to the
connections (``ctiboard.lib.wsframes``): real frames, read by an independent client."""

import re
import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
from websockets.sync.client import ClientConnection, connect

from bench.procs import login as form_login
from tests.e2e.conftest import Demo

TILE = re.compile(
    r'<article id="ext-\d+" class="tile line-([\w-]+)[^"]*"\s+data-seq="\d+" '
    r'data-number="(\d+)"'
)


def session(demo: Demo, username: str) -> str:
    return form_login(demo.url, username, "demo")


def open_board(stack: ExitStack, demo: Demo, cookie: str) -> tuple[ClientConnection, set[str]]:
    """A board socket and the numbers of the tiles its sync showed."""
    socket = stack.enter_context(
        connect(
            demo.url.replace("http", "ws") + "/ws/board/K1000/",
            origin=demo.url,  # type: ignore[arg-type]
            additional_headers={"Cookie": f"sessionid={cookie}"},
            open_timeout=10,
        )
    )
    numbers: set[str] = set()
    while True:
        message = socket.recv(timeout=10)
        assert isinstance(message, str)
        numbers |= {number for _, number in TILE.findall(message)}
        if 'id="pbx-status"' in message:
            return socket, numbers


def pushes(socket: ClientConnection, number: str, line: str) -> Iterator[str]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        message = socket.recv(timeout=deadline - time.monotonic())
        assert isinstance(message, str)
        yield message
        if (line, number) in TILE.findall(message):
            return
    raise AssertionError(f"no push of {number} {line}")


def sockets_opened(demo: Demo, writer: str) -> float:
    metrics = httpx.get(f"{demo.url}/metrics", timeout=10).text
    found = re.search(rf'^ctiboard_sockets_total{{writer="{writer}"}} ([\d.e+]+)$', metrics, re.M)
    return float(found[1]) if found else 0.0


def test_one_batch_reaches_each_socket_as_its_user_may_see_it(demo: Demo) -> None:
    alice, bob = session(demo, "alice"), session(demo, "bob")
    direct_before = sockets_opened(demo, "direct")
    with ExitStack() as stack:
        first, everything = open_board(stack, demo, alice)
        second, _ = open_board(stack, demo, alice)
        team_socket, team = open_board(stack, demo, bob)
        assert len(everything) == 48 and len(team) == 12 and team < everything
        shared, alice_only = min(team), min(everything - team)

        for number in (alice_only, shared):
            httpx.put(
                f"{demo.control}/tenants/K1000/extensions/{number}/state",
                json={"line": "ringing"},
            ).raise_for_status()
        seen_first = list(pushes(first, shared, "ringing"))
        seen_second = list(pushes(second, shared, "ringing"))
        seen_team = list(pushes(team_socket, shared, "ringing"))

    assert sockets_opened(demo, "direct") == direct_before + 3
    assert sockets_opened(demo, "queued") == 0
    # Sockets of one user get the very same frames; the other user's never name a tile
    # he may not see.
    assert seen_first == seen_second
    assert any(("ringing", alice_only) in TILE.findall(m) for m in seen_first)
    assert all(number in team for m in seen_team for _, number in TILE.findall(m))
