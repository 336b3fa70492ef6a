"""Board sockets of the demo under Daphne, where pushed batches are written straight to the
connections (``ctiboard.lib.wsframes``): real frames, read by an independent client, deflated
for clients that offer permessage-deflate (as browsers and ``websockets`` do)."""

import re
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.extensions import ClientExtensionFactory
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from bench.procs import login as form_login
from tests.e2e.conftest import Demo, free_port, start_demo, stop_demo

TILE = re.compile(
    r'<article id="ext-\d+" class="tile line-([\w-]+)[^"]*"\s+data-seq="\d+" '
    r'data-number="(\d+)"'
)


def session(demo: Demo, username: str) -> str:
    return form_login(demo.url, username, "demo")


def open_board(
    stack: ExitStack,
    demo: Demo,
    cookie: str,
    *,
    compression: str | None = "deflate",
    extensions: Sequence[ClientExtensionFactory] | None = None,
) -> tuple[ClientConnection, set[str]]:
    """A board socket and the numbers of the tiles its sync showed."""
    socket = stack.enter_context(
        connect(
            demo.url.replace("http", "ws") + "/ws/board/K1000/",
            origin=Origin(demo.url),
            additional_headers={"Cookie": f"sessionid={cookie}"},
            open_timeout=10,
            compression=compression,
            extensions=extensions,
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
        if 'id="link-status"' in message and "<article" not in message:
            continue  # the worker's first pulse may land as a socket syncs: not a push
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


def negotiated(socket: ClientConnection) -> str:
    assert socket.response is not None
    return socket.response.headers.get("Sec-WebSocket-Extensions", "")


def ring(demo: Demo, number: str) -> None:
    """A line that rings now, whatever it did before (an earlier test may have rung it)."""
    for line in ("idle", "ringing"):
        httpx.put(
            f"{demo.control}/tenants/K1000/extensions/{number}/state", json={"line": line}
        ).raise_for_status()


def test_deflated_and_plain_sockets_see_the_same_board(demo: Demo) -> None:
    alice = session(demo, "alice")
    with ExitStack() as stack:
        deflated, deflated_tiles = open_board(stack, demo, alice)
        plain, plain_tiles = open_board(stack, demo, alice, compression=None)
        # A client that lets the server deflate only with a smaller window than the shared
        # frames use gets them uncompressed rather than deflated once per socket.
        narrow, narrow_tiles = open_board(
            stack,
            demo,
            alice,
            extensions=[ClientPerMessageDeflateFactory(server_max_window_bits=10)],
            compression=None,
        )
        # The browser's inflater is asked for a small window: what a page sends is tiny.
        assert negotiated(deflated) == "permessage-deflate; client_no_context_takeover; " + (
            "client_max_window_bits=9"
        )
        assert negotiated(plain) == "" and negotiated(narrow) == ""
        assert deflated_tiles == plain_tiles == narrow_tiles and len(plain_tiles) == 48

        number = min(deflated_tiles)
        ring(demo, number)
        for socket in (deflated, plain, narrow):
            assert ("ringing", number) in TILE.findall(list(pushes(socket, number, "ringing"))[-1])


def test_a_socket_that_sends_a_deflate_bomb_is_closed(demo: Demo) -> None:
    alice = session(demo, "alice")
    with ExitStack() as stack:
        socket, _ = open_board(stack, demo, alice)
        bystander, tiles = open_board(stack, demo, alice)
        # ~1 KB on the wire, 1 MB inflated: past what any page sends (MAX_INFLATED_MESSAGE).
        socket.send("?" + "q" * 2**20)
        # autobahn drops such a connection (its failByDrop), as it does an oversized frame.
        with pytest.raises(ConnectionClosed):
            while True:
                socket.recv(timeout=10)
        # The others are not affected.
        number = min(tiles)
        ring(demo, number)
        list(pushes(bystander, number, "ringing"))


def test_compression_can_be_switched_off(tmp_path: Path) -> None:
    demo = start_demo(
        tmp_path, free_port(), CTIBOARD_DEMO_TRAFFIC_RATE="0", CTIBOARD_WEBSOCKET_COMPRESSION="0"
    )
    try:
        with ExitStack() as stack:
            socket, tiles = open_board(stack, demo, session(demo, "alice"))
            assert negotiated(socket) == "" and len(tiles) == 48
    finally:
        stop_demo(demo)
