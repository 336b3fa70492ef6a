"""Takeover and readiness with real processes on PostgreSQL + Redis: a SIGKILLed worker is
noticed by its heartbeat (``/readyz`` 503 naming the tenant, status ``unserved``) long before
its lease expires; a planned hand-over (a worker joining, a worker stopped with SIGTERM) never
makes ``/readyz`` fail; a tenant's metric series leave the worker that handed it over."""

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import psycopg
import pytest

from ctiboard.simulator.testing import SimulatorProcess
from tests.conftest import unique_account

from .conftest import Process, Services, Stack, Web, free_port, seed, wait_for
from .support import Background, simulated_tenants

pytestmark = [pytest.mark.production, pytest.mark.timeout(180)]


@dataclass
class Takeover:
    stack: Stack
    services: Services
    tenant_ids: dict[str, int]
    web: Web

    def query(self, sql: str, *params: object) -> list[tuple]:
        with psycopg.connect(self.services.database_url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]

    def holders(self) -> dict[str, str]:
        """account → worker id holding its lease with a live heartbeat."""
        rows = self.query(
            "SELECT t.account, l.holder FROM pbx_ingestlease l "
            "JOIN pbx_tenant t ON t.id = l.tenant_id "
            "JOIN pbx_ingestworker w ON w.worker_id = l.holder "
            "WHERE l.expires_at > now() AND w.expires_at > now()"
        )
        return {account: holder for account, holder in rows if account in self.tenant_ids}

    def status(self, account: str) -> str:
        rows = self.query("SELECT connection_status FROM pbx_tenant WHERE account = %s", account)
        return str(rows[0][0])

    def readyz(self) -> httpx.Response:
        return httpx.get(f"{self.web.url}/readyz", timeout=5)


@dataclass
class ReadyzWatch(Background):
    """Polls /readyz in a thread and keeps every answer that was not 200."""

    url: str
    failures: list[str] = field(default_factory=list)
    polls: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                response = client.get(self.url)
                self.polls += 1
                if response.status_code != 200:
                    self.failures.append(response.text)
                self._stop.wait(0.05)


@pytest.fixture(scope="module")
def takeover(stack: Stack, services: Services, simulator: SimulatorProcess) -> Iterator[Takeover]:
    accounts = [unique_account() for _ in range(2)]
    credentials = simulated_tenants(simulator.control, accounts, seed=5)
    tenant_ids = seed(
        stack,
        {
            "username": "bob",
            "password": "correct horse battery staple",
            "base_url": simulator.api_url,
            "tenants": credentials,
        },
    )
    yield Takeover(stack, services, tenant_ids, stack.web("takeover-web"))
    # The database is the session's: other modules' readiness must not wait for these.
    with psycopg.connect(services.database_url, autocommit=True) as conn:
        conn.execute("UPDATE pbx_tenant SET enabled = false WHERE account = ANY(%s)", (accounts,))
    for account in accounts:
        with contextlib.suppress(Exception):
            simulator.control.delete_tenant(account)


def metrics_of(port: int) -> str:
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text


def healthz(port: int) -> int:
    return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code


def test_a_killed_worker_is_noticed_in_seconds_and_hand_overs_never_fail_readiness(
    takeover: Takeover,
) -> None:
    t, stack = takeover, takeover.stack
    ports = {"tk1": free_port(), "tk2": free_port(), "tk3": free_port()}

    def worker(name: str) -> Process:
        return stack.worker(
            name, CTIBOARD_METRICS_PORT=str(ports[name]), CTIBOARD_METRICS_ADDR="127.0.0.1"
        )

    try:
        w1, w2 = worker("tk1"), worker("tk2")
        wait_for(lambda: t.readyz().status_code == 200, 30, "/readyz answers 200")
        wait_for(lambda: sorted(t.holders().values()) == ["tk1", "tk2"], 20, "one tenant each")
        wait_for(lambda: healthz(ports["tk1"]) == healthz(ports["tk2"]) == 200, 20, "healthy")
        a = next(account for account, holder in t.holders().items() if holder == "tk1")
        wait_for(lambda: t.status(a) == "connected", 20, f"{a} connected")

        # SIGKILL: the heartbeat goes stale within 3 s; the lease (ttl 2 s here) may outlive it.
        w1.stop(signal.SIGKILL)
        killed = time.monotonic()

        def names_a() -> bool:
            response = t.readyz()
            return response.status_code == 503 and a in response.json()["checks"]["workers"].get(
                "unserved", []
            )

        wait_for(names_a, 10, f"/readyz 503 naming {a}", interval=0.05)
        noticed = time.monotonic() - killed
        assert noticed <= 3 + 1.5, f"readiness noticed the dead worker after {noticed:.1f}s"
        wait_for(lambda: t.status(a) in ("unserved", "connected"), 5, f"{a} not 'connected'")
        wait_for(lambda: t.readyz().status_code == 200, 15, "/readyz 200 after the takeover")
        assert t.holders() == {account: "tk2" for account in t.tenant_ids}
        wait_for(lambda: t.status(a) == "connected", 15, f"{a} connected again by tk2")

        # A worker joins: tk2 hands one tenant over; readiness never fails meanwhile.
        wait_for(
            lambda: all(
                f'ctiboard_events_ingested_total{{tenant="{account}"}}' in metrics_of(ports["tk2"])
                for account in t.tenant_ids
            ),
            20,
            "tk2 exports both tenants' series",
        )
        with ReadyzWatch(f"{t.web.url}/readyz").running() as watch:
            w3 = worker("tk3")
            wait_for(lambda: sorted(t.holders().values()) == ["tk2", "tk3"], 20, "one tenant each")
            moved = next(account for account, holder in t.holders().items() if holder == "tk3")
            kept = next(account for account in t.tenant_ids if account != moved)
            text = metrics_of(ports["tk2"])
            assert f'tenant="{moved}"' not in text, "the moved tenant's series left tk2"
            assert f'ctiboard_events_ingested_total{{tenant="{kept}"}}' in text

            # A planned stop with a peer running: released, announced, taken over.
            assert w3.stop(signal.SIGTERM) == 0
            wait_for(
                lambda: t.holders() == {account: "tk2" for account in t.tenant_ids},
                15,
                "tk2 took the stopped worker's tenant",
            )
            time.sleep(1.0)  # and readiness stays up after it
        assert watch.polls > 20
        assert watch.failures == [], f"/readyz failed during planned hand-overs: {watch.failures}"
        assert w2.alive()
    except Exception as exc:
        raise AssertionError(f"{type(exc).__name__}: {exc}\n\n{stack.dump()}") from exc
