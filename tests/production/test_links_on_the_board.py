"""A broken link under the production topology (Daphne, workers on PostgreSQL and Redis, the
simulator), watched through the board sockets of a busy and a quiet tenant: the page is stale
within 3 s of the break, never "Live" while stale nor with a tile the PBX did not say, and live
with every tile equal to the PBX within 3 s of the link returning. A killed worker returns with
the survivor's takeover, the database when it takes connections again. (Redis:
test_redis_outage.py; the PBX and the browser's own socket: tests/e2e.)"""

import contextlib
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg
import pytest

from ctiboard.simulator.testing import SimulatorProcess
from tests.conftest import unique_account

from .conftest import Process, Services, Stack, Web, running_stack, seed
from .support import BoardSocket, TruthSamples, caught_up, pump, truth
from .test_database_faults import database_refused

pytestmark = [pytest.mark.production, pytest.mark.timeout(240)]

PASSWORD = "correct horse battery staple"
# The bounds (#19): stale within 3 s of a break, the truth within 3 s of the repair.
BOUND = 3.0


@dataclass
class Boards:
    """A quiet and a busy tenant of the simulator, their boards open on one web process."""

    simulator: SimulatorProcess
    services: Services
    tenants: dict[str, int]  # account -> tenant id
    quiet: str
    busy: str
    sockets: dict[str, BoardSocket]
    samples: dict[str, TruthSamples]

    def truth_of(self, account: str) -> Callable[[], dict[str, tuple[str, str]]]:
        return lambda: truth(self.simulator.control, account)

    def pump(self, seconds: float) -> None:
        pump(self.sockets.values(), seconds)

    def until(self, check: Callable[[], object], timeout: float, what: str) -> float:
        """Read every board until ``check()``; the monotonic time it held."""
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout:g}s: {what}")
            self.pump(0.05)
        return time.monotonic()

    def caught_up(self, accounts: list[str], timeout: float) -> dict[str, float]:
        return caught_up(self.simulator.control, {a: self.sockets[a] for a in accounts}, timeout)

    def holders(self) -> dict[str, str]:
        """account -> worker holding its lease with a live heartbeat."""
        with psycopg.connect(self.services.database_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT t.account, l.holder FROM pbx_ingestlease l "
                "JOIN pbx_tenant t ON t.id = l.tenant_id "
                "JOIN pbx_ingestworker w ON w.worker_id = l.holder "
                "WHERE l.expires_at > now() AND w.expires_at > now()"
            ).fetchall()
        return {account: holder for account, holder in rows if account in self.tenants}


@contextlib.contextmanager
def boards_of(
    stack: Stack, services: Services, simulator: SimulatorProcess, name: str
) -> Iterator[tuple[Boards, Web]]:
    quiet, busy = unique_account(), unique_account()
    for account, rate in ((quiet, 0.0), (busy, 6.0)):
        simulator.control.create_tenant(
            account,
            f"{account}/api",
            f"pw-{account}",
            extensions=6,
            seed=7,
            time_scale=0.05,
            traffic_rate=rate,
        )
    credentials = {account: [f"{account}/api", f"pw-{account}"] for account in (quiet, busy)}
    spec = {"username": name, "password": PASSWORD, "base_url": simulator.api_url}
    tenants = seed(stack, {**spec, "tenants": credentials})
    web = stack.web(f"{name}-web")
    session = web.login(name, PASSWORD)
    sockets = {account: BoardSocket(web, account, session) for account in (quiet, busy)}
    samples = {
        account: TruthSamples(simulator.control.base_url, account) for account in (quiet, busy)
    }
    boards = Boards(simulator, services, tenants, quiet, busy, sockets, samples)
    try:
        with samples[quiet].running(), samples[busy].running():
            yield boards, web
    finally:
        for board in sockets.values():
            with contextlib.suppress(Exception):
                board.close()
        with psycopg.connect(services.database_url, autocommit=True) as conn:
            conn.execute(
                "UPDATE pbx_tenant SET enabled = false WHERE account = ANY(%s)", ([*tenants],)
            )
        for account in (quiet, busy):
            with contextlib.suppress(Exception):
                simulator.control.delete_tenant(account)


@dataclass
class Outage:
    """One break as the board of one tenant saw it (seconds; monotonic times)."""

    account: str
    broke: float
    stale: float
    returned: float
    repaired: float

    @property
    def stale_after(self) -> float:
        return self.stale - self.broke

    @property
    def repaired_after(self) -> float:
        return self.repaired - self.returned


def observed(
    boards: Boards, account: str, broke: float, returned: float, repaired: float
) -> Outage:
    """The board's story of one break, checked: stale, never live while broken, and never
    live with a tile the PBX had not said."""
    board = boards.sockets[account]
    stale = next((at for at, live in board.changes if at >= broke and not live), None)
    assert stale is not None, f"{account}: never stale after the break: {board.changes}"
    relive = [at for at, live in board.changes if stale < at < returned and live]
    assert not relive, f"{account}: 'Live' while the link was broken, at {relive}"
    wrong = boards.samples[account].live_but_stale(board, since=broke)
    assert not wrong, f"{account}: 'Live' with tiles the PBX had not said: {wrong[:3]}"
    return Outage(account, broke, stale, returned, repaired)


def assert_bounds(outages: list[Outage]) -> None:
    figures = [
        f"{o.account}: stale after {o.stale_after:.2f}s, link back after"
        f" {o.returned - o.broke:.2f}s, the truth {o.repaired_after:.2f}s after that"
        for o in outages
    ]
    print("\n".join(figures))
    for outage in outages:
        assert outage.stale_after < BOUND, figures
        assert outage.repaired_after < BOUND, figures


# --- a worker killed -------------------------------------------------------------------


# Each test's stack its own, gone before the next starts: its workers would take the next
# test's tenants, whose credentials they cannot decrypt (another SECRET_KEY).
@pytest.fixture
def kill_stack(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # The production lease (10 s): a takeover follows the dead heartbeat (3 s), not the lease.
    logs = tmp_path_factory.mktemp("links-kill")
    with running_stack(services, logs, CTIBOARD_LEASE_TTL="10") as stack:
        yield stack


def test_a_killed_worker_is_stale_within_3s_and_repaired_within_3s_of_the_takeover(
    kill_stack: Stack, services: Services, simulator: SimulatorProcess
) -> None:
    stack = kill_stack
    workers: dict[str, Process] = {}
    outages: list[Outage] = []
    with boards_of(stack, services, simulator, "killer") as (boards, _web):
        try:
            for name in ("lk1", "lk2"):
                workers[name] = stack.worker(name)
            for account in (boards.quiet, boards.busy):
                # One tenant each, then the holder of each in turn is killed.
                boards.until(
                    lambda: len(set(boards.holders().values())) == 2, 30, "one tenant each"
                )
                boards.caught_up([boards.quiet, boards.busy], 30)
                holders = boards.holders()
                victim = holders[account]
                survivor = next(h for a, h in holders.items() if a != account)
                workers[victim].stop(signal.SIGKILL)
                broke = time.monotonic()
                if account == boards.quiet:
                    # The quiet tenant's truth moves once while nobody streams it.
                    number = next(iter(boards.truth_of(account)()))
                    simulator.control.set_state(account, number, line="ringing", presence="dnd")
                returned = boards.until(
                    lambda account=account, survivor=survivor: (
                        boards.holders().get(account) == survivor
                    ),
                    20,
                    f"{survivor} took {account} over",
                )
                repaired = boards.caught_up([account], BOUND + 5)[account]
                outages.append(observed(boards, account, broke, returned, repaired))
                # A fresh worker joins for the next round: one tenant each again.
                workers[f"{victim}b"] = stack.worker(f"{victim}b")
        except Exception as exc:
            raise AssertionError(f"{type(exc).__name__}: {exc}\n\n{stack.dump()}") from exc
    assert_bounds(outages)


# --- the database away -----------------------------------------------------------------


@pytest.fixture
def database_stack(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # A lease (60 s) that outlasts the outage: the worker's own repair is under test.
    logs = tmp_path_factory.mktemp("links-database")
    with running_stack(services, logs, CTIBOARD_LEASE_TTL="60") as stack:
        yield stack


def test_a_database_outage_is_stale_within_3s_and_repaired_within_3s_of_its_end(
    database_stack: Stack, services: Services, simulator: SimulatorProcess
) -> None:
    stack = database_stack
    outages: list[Outage] = []
    with boards_of(stack, services, simulator, "dbwatcher") as (boards, _web):
        try:
            # A disabled tenant as well: each lease round then writes a status (its round
            # failed for good after an outage once, in a thread whose connection had ended).
            off = unique_account()
            spec = {"username": "dboff", "password": PASSWORD, "base_url": simulator.api_url}
            seed(stack, {**spec, "tenants": {off: [f"{off}/api", "pw"]}})
            with psycopg.connect(services.database_url, autocommit=True) as conn:
                conn.execute("UPDATE pbx_tenant SET enabled = false WHERE account = %s", [off])
            stack.worker("ld1", DATABASE_POOL_TIMEOUT="1")
            boards.caught_up([boards.quiet, boards.busy], 30)
            quiet_number = next(iter(boards.truth_of(boards.quiet)()))
            with database_refused(services):
                broke = time.monotonic()
                boards.pump(0.5)
                simulator.control.set_state(
                    boards.quiet, quiet_number, line="ringing", presence="dnd"
                )
                boards.until(
                    lambda: not any(b.live for b in boards.sockets.values()),
                    10,
                    "both boards stale",
                )
                # An outage long enough for the connection pool's reconnects to space out.
                boards.pump(12.0)
            returned = time.monotonic()
            for account in (boards.quiet, boards.busy):
                repaired = boards.caught_up([account], BOUND + 5)[account]
                outages.append(observed(boards, account, broke, returned, repaired))
        except Exception as exc:
            raise AssertionError(f"{type(exc).__name__}: {exc}\n\n{stack.dump()}") from exc
    assert_bounds(outages)
