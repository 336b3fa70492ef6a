"""Helpers of the production tests: a browser's board socket, the simulator's truth."""

import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from ctiboard.cti.events import LINE_STATES, PRESENCES
from ctiboard.simulator.control import SimulatorControl

from .conftest import Web

LINK = re.compile(r'<span id="link-status"[^>]*data-live="([01]?)"')
PBX = re.compile(r'<span id="pbx-status"[^>]*data-status="([\w-]*)"')
TILE = re.compile(
    r'<article id="ext-\d+" class="tile line-([\w-]+) presence-([\w-]+)[^"]*"\s+'
    r'data-seq="(\d+)" data-number="([^"]+)"'
)


class BoardSocket:
    """A browser's board socket: keeps the tiles it was sent, number → (line, presence)."""

    def __init__(self, web: Web, account: str, session: str) -> None:
        self.account = account
        self.tiles: dict[str, tuple[str, str]] = {}
        # The link to the worker as the page was last told: "1" live, "0" broken, "" waiting.
        self.link = ""
        # The PBX status as the page was last told ("connected", "reconnecting", ...).
        self.status = ""
        # Every frame after which the page said "Live": (monotonic time, the tiles then).
        self.live_frames: list[tuple[float, dict[str, tuple[str, str]]]] = []
        # Whenever what the page says changes: (monotonic time, live or not).
        self.changes: list[tuple[float, bool]] = []
        self._connection = connect(
            f"{web.ws_url}/ws/board/{account}/",
            origin=web.url,  # type: ignore[arg-type]
            additional_headers={"Cookie": f"sessionid={session}"},
            open_timeout=10,
        )
        self.ws: ClientConnection = self._connection.__enter__()

    def _take(self, frame: str | bytes) -> None:
        text = frame if isinstance(frame, str) else frame.decode()
        for line, presence, _seq, number in TILE.findall(text):
            self.tiles[number] = (line, presence)
        link = LINK.search(text)
        if link:
            self.link = link[1]
        status = PBX.search(text)
        if status:
            self.status = status[1]
        # What board.js does after each message: "Live" only with both links good.
        now, live = time.monotonic(), self.live
        if not self.changes or self.changes[-1][1] != live:
            self.changes.append((now, live))
        if live:
            self.live_frames.append((now, dict(self.tiles)))

    @property
    def live(self) -> bool:
        """Whether the page says "Live" (board.js ``freshness``: the socket is open)."""
        return self.link == "1" and self.status == "connected"

    def read(self, seconds: float) -> None:
        """Take what arrives for ``seconds``."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                self._take(self.ws.recv(timeout=remaining))

    def wait_until(self, check: Callable[[dict[str, tuple[str, str]]], bool], what: str) -> None:
        deadline = time.monotonic() + 20
        while not check(self.tiles):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.account}: not within 20s: {what}; has {self.tiles}")
            with contextlib.suppress(TimeoutError):
                self._take(self.ws.recv(timeout=remaining))

    def link_is(self, live: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while self.link != live:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.account}: link not {live!r} within {timeout}s")
            with contextlib.suppress(TimeoutError):
                self._take(self.ws.recv(timeout=remaining))

    def shows(self, truth: dict[str, tuple[str, str]]) -> None:
        self.wait_until(lambda tiles: tiles == truth, f"the board shows {truth}")

    def close_code(self) -> int | None:
        """Read until the server closes; the close code it sent."""
        try:
            while True:
                self._take(self.ws.recv(timeout=20))
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None

    def close(self) -> None:
        self._connection.__exit__(None, None, None)


def truth(control: SimulatorControl, account: str) -> dict[str, tuple[str, str]]:
    """The simulator's states as the tiles show them (CSS tokens)."""
    return {
        s["extension"]: (
            s["line"] if s["line"] in LINE_STATES else "unknown",
            (s["presence"] or "null") if (s["presence"] or "null") in PRESENCES else "unknown",
        )
        for s in control.states(account)
    }


def pump(boards: Iterable[BoardSocket], seconds: float) -> None:
    """Read every board for ``seconds`` (what arrives is timed as it arrives)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for board in boards:
            board.read(0.01)


def caught_up(
    control: SimulatorControl, boards: dict[str, BoardSocket], timeout: float
) -> dict[str, float]:
    """Read every board until each is live with every tile equal to the PBX's truth, fetched
    again after every try (a busy tenant's moves on; its pushes get a moment to arrive);
    account -> the monotonic time it was."""
    deadline = time.monotonic() + timeout
    done: dict[str, float] = {}
    while True:
        wants = {a: truth(control, a) for a in boards if a not in done}
        settle = min(deadline, time.monotonic() + 0.3)
        while time.monotonic() < settle:
            for account, want in wants.items():
                board = boards[account]
                if account not in done and board.live and board.tiles == want:
                    done[account] = time.monotonic()
            if len(done) == len(boards):
                return done
            pump(boards.values(), 0.02)
        if time.monotonic() >= deadline:
            shown = {a: (boards[a].live, boards[a].tiles) for a in wants}
            raise AssertionError(
                f"not live with the truth within {timeout:g}s: {shown}, truth {wants}"
            )


def simulated_tenants(
    control: SimulatorControl, accounts: list[str], **options: Any
) -> dict[str, list[str]]:
    """Tenants of the simulator, 4 extensions each: account -> [API username, password]."""
    credentials = {}
    for account in accounts:
        credentials[account] = [f"{account}/ctiboard", f"secret-{account}"]
        control.create_tenant(
            account, *credentials[account], extensions=4, time_scale=0.02, **options
        )
    return credentials


class Background:
    """A sampler that runs its ``_run`` in a thread while ``running()``; ``_run`` loops until
    ``_stop`` is set."""

    _stop: threading.Event

    def _run(self) -> None:
        raise NotImplementedError

    @contextlib.contextmanager
    def running(self) -> Iterator["Background"]:
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(10)


@dataclass
class TruthSamples(Background):
    """The simulator's truth of one tenant, polled in a thread: what each extension was when."""

    base_url: str
    account: str
    samples: list[tuple[float, dict[str, tuple[str, str]]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _run(self) -> None:
        with SimulatorControl(self.base_url) as control:
            while not self._stop.is_set():
                self.samples.append((time.monotonic(), truth(control, self.account)))
                self._stop.wait(0.02)

    def stale_tiles(
        self, at: float, tiles: dict[str, tuple[str, str]], lag: float
    ) -> dict[str, tuple[str, str]]:
        """The tiles shown at ``at`` that the PBX had not said within ``lag`` seconds before
        (a live board is never further behind than a push takes)."""
        recent = [shown for when, shown in self.samples if at - lag <= when <= at + 0.05]
        before = [shown for when, shown in self.samples if when < at - lag][-1:]
        seen = before + recent
        return {
            number: tile
            for number, tile in tiles.items()
            if not any(sample.get(number) == tile for sample in seen)
        }

    def live_but_stale(
        self, board: BoardSocket, since: float, lag: float = 1.0
    ) -> list[tuple[float, dict[str, tuple[str, str]]]]:
        """Every moment after ``since`` the board said "Live" with a tile the PBX had not
        shown within ``lag`` seconds: (seconds after ``since``, those tiles)."""
        return [
            (round(at - since, 2), stale)
            for at, tiles in board.live_frames
            if at >= since and (stale := self.stale_tiles(at, tiles, lag))
        ]
