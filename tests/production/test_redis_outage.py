"""Redis down under the production topology (a web process and a worker on PostgreSQL, with a
Redis of the test's own): open boards learn it within 3 s, handshakes are refused with a close
the page explains (never an HTTP 500), the worker keeps storing, and within 3 s of Redis
answering again every board is live with the PBX's truth, a busy and a quiet tenant's, without
a traceback storm."""

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from ctiboard.simulator.testing import SimulatorProcess
from tests.conftest import unique_account

from .conftest import Services, Stack, free_port, running_stack, seed, wait_for
from .support import BoardSocket, caught_up, pump, truth

pytestmark = [pytest.mark.production, pytest.mark.timeout(180)]

PASSWORD = "correct horse battery staple"


class PrivateRedis:
    """A redis-server of this test's own on a free port, to kill and bring back."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary, self.directory = binary, directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - Debian's redis-server, fixed flags
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._answers, 10, "redis-server answers")

    def _answers(self) -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), 1) as s,
        ):
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
        return False

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(binary, tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    with contextlib.suppress(Exception):
        server.kill()


@pytest.fixture(scope="module")
def outage_stack(
    services: Services, redis: PrivateRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("redis-outage")
    with running_stack(services, logs, REDIS_URL=redis.url, CTIBOARD_LEASE_TTL="30") as stack:
        yield stack


def test_a_redis_outage_is_shown_within_seconds_and_repaired_when_it_ends(
    outage_stack: Stack, redis: PrivateRedis, simulator: SimulatorProcess
) -> None:
    quiet, busy = unique_account(), unique_account()
    for account, rate in ((quiet, 0.0), (busy, 8.0)):
        simulator.control.create_tenant(
            account,
            f"{account}/api",
            f"pw-{account}",
            extensions=6,
            seed=3,
            time_scale=0.05,
            traffic_rate=rate,
        )
    accounts = {quiet: [f"{quiet}/api", f"pw-{quiet}"], busy: [f"{busy}/api", f"pw-{busy}"]}
    spec = {"username": "carol", "password": PASSWORD, "base_url": simulator.api_url}
    seed(outage_stack, {**spec, "tenants": accounts})
    web = outage_stack.web("outage-web")
    worker = outage_stack.worker("outage-worker")
    session = web.login("carol", PASSWORD)
    boards = {account: BoardSocket(web, account, session) for account in (quiet, busy)}
    try:
        for account, board in boards.items():
            board.link_is("1")
            if account == quiet:
                board.shows(truth(simulator.control, account))

        redis.kill()
        down = time.monotonic()
        for board in boards.values():
            board.link_is("0", timeout=6)
        noticed = time.monotonic() - down
        # A handshake now gets a close the page explains, not an HTTP 500.
        with (
            connect(
                f"{web.ws_url}/ws/board/{quiet}/",
                origin=web.url,  # type: ignore[arg-type]
                additional_headers={"Cookie": f"sessionid={session}"},
                open_timeout=10,
            ) as refused,
            pytest.raises(ConnectionClosed) as closed,
        ):
            refused.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4503

        # The quiet tenant changes once while nobody can be told.
        number = next(iter(truth(simulator.control, quiet)))
        simulator.control.set_state(quiet, number, line="ringing", presence="dnd")
        # Long enough for every reconnect backoff to reach its longest wait.
        pump(boards.values(), 12)
        assert not any(board.live for board in boards.values())
        redis.start()
        back = time.monotonic()
        # Live again, every tile equal to the PBX: the busy tenant's and the quiet one's.
        repaired = {
            account: at - back
            for account, at in caught_up(simulator.control, boards, timeout=10).items()
        }
        assert boards[quiet].tiles[number] == ("ringing", "dnd")
        assert worker.alive()
    finally:
        for board in boards.values():
            with contextlib.suppress(Exception):
                board.close()
        for account in (quiet, busy):
            with contextlib.suppress(Exception):
                simulator.control.delete_tenant(account)
    print(f"stale after {noticed:.2f}s; the truth after Redis answered: {repaired}")
    assert noticed < 3, noticed  # the failed subscription tells the sockets at once
    assert all(seconds < 3 for seconds in repaired.values()), repaired
    # One warning and a summary a minute per component, not a traceback a second.
    for process in (web.process, worker):
        tracebacks = [line for line in process.output().splitlines() if "Traceback" in line]
        assert len(tracebacks) <= 2, "\n".join(line[:300] for line in tracebacks)
