"""Two Daphne web processes and two ingest workers on PostgreSQL + Redis, against the simulator.

What the issue asks for, with real processes: a state change in the PBX reaches a logged-in
socket on either web process; a killed worker's tenants move to the other within seconds and
the board resyncs; tenants are spread over the workers and no tenant is ever streamed twice;
a web process that is stopped closes its sockets with 1012.
"""

import contextlib
import json
import re
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import psycopg
import pytest

from ctiboard.simulator.control import SimulatorControl
from ctiboard.simulator.testing import SimulatorProcess
from tests.conftest import unique_account

from .conftest import Process, Services, Stack, Web, free_port, seed, wait_for
from .support import Background, BoardSocket, simulated_tenants, truth

pytestmark = [pytest.mark.production, pytest.mark.timeout(180)]

PASSWORD = "correct horse battery staple"


@dataclass
class StreamWatch(Background):
    """Samples the simulator's count of open state streams per tenant, in a thread."""

    base_url: str
    accounts: list[str]
    most: Counter[str] = field(default_factory=Counter)
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def _run(self) -> None:
        with SimulatorControl(self.base_url) as control:
            while not self._stop.is_set():
                for account in self.accounts:
                    open_streams = control.counters(account)["open_streams"]["states"]
                    self.most[account] = max(self.most[account], open_streams)
                self.samples += 1
                self._stop.wait(0.02)


@dataclass
class Topology:
    stack: Stack
    services: Services
    simulator: SimulatorProcess
    accounts: list[str]
    tenant_ids: dict[str, int]
    web1: Web
    web2: Web

    @property
    def control(self) -> SimulatorControl:
        return self.simulator.control

    def holders(self) -> dict[str, int]:
        """account → pid of the live worker holding its lease, as the database says."""
        with psycopg.connect(self.services.database_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT l.tenant_id, w.pid FROM pbx_ingestlease l "
                "JOIN pbx_ingestworker w ON w.worker_id = l.holder "
                "WHERE l.expires_at > now() AND w.expires_at > now()"
            ).fetchall()
        by_id = {pk: account for account, pk in self.tenant_ids.items()}
        return {by_id[pk]: int(pid) for pk, pid in rows if pk in by_id}

    def held_by(self, *workers: Process) -> dict[int, int]:
        counts = Counter(self.holders().values())
        return {w.pid: counts[w.pid] for w in workers} | {
            pid: n for pid, n in counts.items() if pid not in {w.pid for w in workers}
        }


@pytest.fixture(scope="module")
def topology(stack: Stack, services: Services, simulator: SimulatorProcess) -> Iterator[Topology]:
    accounts = [unique_account() for _ in range(4)]
    credentials = simulated_tenants(simulator.control, accounts, seed=11)
    tenant_ids = seed(
        stack,
        {
            "username": "alice",
            "password": PASSWORD,
            "base_url": simulator.api_url,
            "tenants": credentials,
        },
    )
    web1, web2 = stack.web("web1"), stack.web("web2")
    yield Topology(stack, services, simulator, accounts, tenant_ids, web1, web2)
    for account in accounts:
        with contextlib.suppress(Exception):
            simulator.control.delete_tenant(account)


@contextlib.contextmanager
def explained(stack: Stack) -> Iterator[None]:
    """On failure, show what the processes logged."""
    try:
        yield
    except Exception as exc:
        raise AssertionError(f"{type(exc).__name__}: {exc}\n\n{stack.dump()}") from exc


def metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in metrics:\n{text}"
    return float(match[1])


def test_production_topology(topology: Topology) -> None:
    t, stack = topology, topology.stack
    with explained(stack):
        # No worker yet: not ready, and the body says which tenants nobody serves.
        response = httpx.get(f"{t.web1.url}/readyz", timeout=10)
        assert response.status_code == 503
        checks = response.json()["checks"]
        assert checks["database"]["ok"] and checks["channel_layer"]["ok"]
        assert checks["channel_layer"]["backend"] == "RedisPubSubChannelLayer"
        assert checks["workers"]["unserved"] == sorted(t.accounts)

        watch = StreamWatch(t.simulator.base_url, t.accounts)
        with watch.running():
            worker_metrics = free_port()
            w1 = stack.worker("worker1")
            w2 = stack.worker(
                "worker2",
                CTIBOARD_METRICS_PORT=str(worker_metrics),
                CTIBOARD_METRICS_ADDR="127.0.0.1",
            )
            for web in (t.web1, t.web2):
                wait_for(
                    lambda web=web: httpx.get(f"{web.url}/readyz", timeout=5).status_code == 200,
                    30,
                    f"{web.url}/readyz answers 200",
                )
            # Spread: two tenants each.
            wait_for(lambda: t.held_by(w1, w2) == {w1.pid: 2, w2.pid: 2}, 20, "a 2/2 split")
            holders = t.holders()
            a = next(acc for acc in t.accounts if holders[acc] == w1.pid)
            b = next(acc for acc in t.accounts if holders[acc] == w2.pid)

            # A state change reaches a logged-in socket on either web process.
            session = t.web1.login("alice", PASSWORD)
            sockets = {
                (web.url, account): BoardSocket(web, account, session)
                for web in (t.web1, t.web2)
                for account in (a, b)
            }
            for (_, account), board in sockets.items():
                board.shows(truth(t.control, account))
            for account in (a, b):
                t.control.set_state(account, "101", line="ringing", presence="dnd")
                expected = truth(t.control, account)
                assert expected["101"] == ("ringing", "dnd")
                for web in (t.web1, t.web2):
                    sockets[(web.url, account)].shows(expected)

            # Each process exposes its own metrics.
            web_metrics = httpx.get(f"{t.web1.url}/metrics", timeout=5).text
            assert metric(web_metrics, "ctiboard_sockets_open") == 2
            assert metric(web_metrics, "ctiboard_push_latency_seconds_count") >= 1
            own = httpx.get(f"http://127.0.0.1:{worker_metrics}/metrics", timeout=5).text
            assert metric(own, f'ctiboard_events_ingested_total{{tenant="{b}"}}') >= 1
            assert metric(own, "ctiboard_ingest_leases_held") == 2

            # A dead worker's tenants move to the other; what changed meanwhile is resynced.
            w1.stop(signal.SIGKILL)
            t.control.set_state(a, "102", line="in-use", presence="busy")
            wait_for(lambda: t.held_by(w2) == {w2.pid: 4}, 15, "worker2 holds all four")
            expected = truth(t.control, a)
            assert expected["102"] == ("in-use", "busy")
            for web in (t.web1, t.web2):
                sockets[(web.url, a)].shows(expected)
            late = BoardSocket(t.web2, a, session)
            late.shows(expected)
            late.close()

            # A new worker gets its fair share, handed over without any double streaming.
            w3 = stack.worker("worker3")
            wait_for(lambda: t.held_by(w2, w3) == {w2.pid: 2, w3.pid: 2}, 20, "a 2/2 split")
            moved = next(acc for acc, pid in t.holders().items() if pid == w3.pid)
            board = BoardSocket(t.web1, moved, session)
            board.shows(truth(t.control, moved))
            t.control.set_state(moved, "103", line="ringing", presence="away")
            board.shows(truth(t.control, moved))
            board.close()

        assert watch.samples > 20
        assert all(watch.most[acc] == 1 for acc in t.accounts), (
            f"most state streams open at once per tenant: {dict(watch.most)}"
        )

        # A deploy stops web2: its sockets are told 1012 and resync from web1.
        t.web2.process.stop(signal.SIGTERM)
        for account in (a, b):
            assert sockets[(t.web2.url, account)].close_code() == 1012
            again = BoardSocket(t.web1, account, session)
            again.shows(truth(t.control, account))
            again.close()
        for (url, _), board in sockets.items():
            if url == t.web1.url:
                board.close()

        # LOG_FORMAT=json: each log record is one line holding one JSON object.
        entries = [json.loads(line) for line in w2.output().splitlines() if line.startswith("{")]
        assert any(
            e["logger"] == "ctiboard.ingest.supervisor" and "streaming from" in e["message"]
            for e in entries
        )
