"""Fault soak of the production topology: a Daphne web process and an ingest worker on
PostgreSQL and Redis, against a simulator that is itself restarted.

Round after round one fault hits: stream drops, truncations, stalls and garbage frames, 401s
and 5xx, refused logins, a PBX clock ten minutes off (either way), the simulator killed and
started again with its state changed while down, the worker SIGKILLed and restarted, and calls
rung, answered and hung up (by the PBX and by click-to-call) while a stream is down. After
each round the test measures how long until every extension's stored *and* shown state equals
the simulator's truth again. At the end the traffic stops and the calls run out: nothing may
dangle, the worker must never have died on its own, no process may have logged a traceback.

In the suite it runs CTIBOARD_FAULT_SOAK_SECONDS (default 40). For the figures in
docs/production.md, a long run:

    CTIBOARD_FAULT_SOAK_SECONDS=600 .venv/bin/pytest -s tests/production/test_fault_soak.py
"""

import contextlib
import os
import random
import signal
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg
import pytest

from ctiboard.simulator.testing import SimulatorProcess
from tests.conftest import unique_account

from .conftest import Process, Services, Stack, Web, free_port, running_stack, seed, wait_for
from .support import BoardSocket

SOAK_SECONDS = float(os.environ.get("CTIBOARD_FAULT_SOAK_SECONDS", "40"))
SEED = int(os.environ.get("CTIBOARD_FAULT_SOAK_SEED", str(random.randrange(1_000_000))))
# How long one round's repair may take: the worst path is a SIGKILLed worker (its heartbeat
# is noticed within 3 s, the lease lasts 2 s here) followed by a fresh login and bootstrap.
REPAIR_LIMIT = 20.0

pytestmark = [
    pytest.mark.production,
    pytest.mark.soak,
    pytest.mark.timeout(SOAK_SECONDS + 240),
]

STREAM_FAULTS = ["drop", "truncate", "stall", "malformed", "unauthorized"]
ROUNDS = [
    "stream",
    "stream",
    "http_error",
    "refused_login",
    "clock",
    "calls_while_down",
    "simulator_restart",
    "worker_kill",
]
PASSWORD = "correct horse battery staple"


@dataclass
class Tenant:
    account: str
    username: str
    password: str
    extensions: int
    rate: float
    tenant_id: int = 0


@dataclass
class Soak:
    stack: Stack
    services: Services
    web: Web
    port: int
    tenants: list[Tenant]
    rng: random.Random
    simulator: SimulatorProcess | None = None
    worker: Process | None = None
    generation: int = 0
    repairs: dict[str, list[float]] = field(default_factory=dict)
    sockets: dict[str, BoardSocket] = field(default_factory=dict)
    workers: list[Process] = field(default_factory=list)

    # --- the simulator --------------------------------------------------------------------

    def start_simulator(self) -> None:
        """The simulator on its one port, its tenants made anew: a restarted PBX's state
        differs from what it was (another seed), as a real one's would after an outage."""
        self.generation += 1
        simulator = SimulatorProcess("--port", str(self.port))
        simulator.__enter__()
        self.simulator = simulator
        for tenant in self.tenants:
            simulator.control.create_tenant(
                tenant.account,
                tenant.username,
                tenant.password,
                extensions=tenant.extensions,
                seed=self.rng.randrange(1_000_000),
                time_scale=0.05,
                token_ttl=4.0,
                keepalive=0.5,
                oddities="realistic",
            )
            simulator.control.set_traffic(tenant.account, rate=tenant.rate)

    @property
    def control(self) -> Any:
        assert self.simulator is not None
        return self.simulator.control

    def truth(self, tenant: Tenant) -> dict[str, tuple[str, str]]:
        return {
            s["extension"]: (s["line"], s["presence"] or "")
            for s in self.control.states(tenant.account)
        }

    # --- the worker -----------------------------------------------------------------------

    def start_worker(self, identity: str) -> None:
        self.worker = self.stack.worker(f"soak-{len(self.workers)}", CTIBOARD_WORKER_ID=identity)
        self.workers.append(self.worker)

    # --- what is stored and shown ---------------------------------------------------------

    def stored(self, tenant: Tenant) -> dict[str, tuple[str, str]]:
        with psycopg.connect(self.services.database_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT number, line, presence FROM pbx_extension WHERE tenant_id = %s AND active",
                (tenant.tenant_id,),
            ).fetchall()
        return {number: (line, presence) for number, line, presence in rows}

    def shown(self, tenant: Tenant) -> dict[str, tuple[str, str]]:
        socket = self.sockets[tenant.account]
        with contextlib.suppress(TimeoutError):
            while True:
                socket._take(socket.ws.recv(timeout=0.02))
        return dict(socket.tiles)

    def agrees(self) -> bool:
        for tenant in self.tenants:
            truth = self.truth(tenant)
            if self.stored(tenant) != truth:
                return False
            if self.shown(tenant) != as_tiles(truth):
                return False
        return True

    def repaired(self, kind: str, since: float) -> None:
        """Wait until stored and shown states equal the truth; note how long it took from
        ``since`` (monotonic), when the broken link was whole again."""
        wait_for(self.agrees, REPAIR_LIMIT, f"stored and shown equal the truth after {kind}")
        self.repairs.setdefault(kind, []).append(time.monotonic() - since)


def as_tiles(truth: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """The simulator's raw states as the board's tiles name them (CSS tokens)."""
    from ctiboard.cti.events import LINE_STATES, PRESENCES

    return {
        number: (
            line if line in LINE_STATES else "unknown",
            (presence or "null") if (presence or "null") in PRESENCES else "unknown",
        )
        for number, (line, presence) in truth.items()
    }


@pytest.fixture
def soak(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Soak]:
    rng = random.Random(SEED)
    tenants = [
        Tenant(account, f"{account}/ctiboard", f"secret-{account}", extensions, rate)
        for account, extensions, rate in (
            (unique_account(), 12, 2.0),  # a busy tenant
            (unique_account(), 4, 0.0),  # a quiet one: only the soak's own calls change it
        )
    ]
    with running_stack(services, tmp_path_factory.mktemp("fault-soak")) as stack:
        soak = Soak(stack, services, stack.web("soak-web"), free_port(), tenants, rng)
        try:
            soak.start_simulator()
            assert soak.simulator is not None
            ids = seed(
                stack,
                {
                    "username": "soaker",
                    "password": PASSWORD,
                    "base_url": soak.simulator.api_url,
                    "tenants": {t.account: [t.username, t.password] for t in tenants},
                },
            )
            for tenant in tenants:
                tenant.tenant_id = ids[tenant.account]
            soak.start_worker("soak-worker")
            yield soak
        finally:
            for socket in soak.sockets.values():
                with contextlib.suppress(Exception):
                    socket.close()
            if soak.simulator is not None:
                soak.simulator.stop()


class Caller:
    """The soak's user at the board: click-to-call from his own extension of the busy
    tenant, through the web process like the page's Call button."""

    def __init__(self, web: Web, account: str) -> None:
        self.account = account
        self.client = httpx.Client(base_url=web.url, timeout=10)
        self.client.get("/login/").raise_for_status()
        response = self.client.post(
            "/login/",
            data={
                "username": "soaker",
                "password": PASSWORD,
                "csrfmiddlewaretoken": self.client.cookies["csrftoken"],
            },
        )
        assert response.status_code == 302, response.text

    @property
    def session(self) -> str:
        return str(self.client.cookies["sessionid"])

    def call(self, extension_id: int) -> int:
        response = self.client.post(
            f"/t/{self.account}/call/",
            data={"extension": str(extension_id)},
            headers={"X-CSRFToken": self.client.cookies["csrftoken"]},
        )
        return response.status_code

    def close(self) -> None:
        self.client.close()


def make_caller(soak: Soak, tenant: Tenant) -> tuple[Caller, list[int]]:
    """The soak user's own extension (the busy tenant's first) and the others he may call."""
    with psycopg.connect(soak.services.database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT id, number FROM pbx_extension WHERE tenant_id = %s ORDER BY number",
            (tenant.tenant_id,),
        ).fetchall()
        conn.execute(
            "UPDATE pbx_membership SET own_extension_id = %s WHERE tenant_id = %s",
            (rows[0][0], tenant.tenant_id),
        )
    return Caller(soak.web, tenant.account), [pk for pk, _ in rows[1:]]


def ring_and_settle(soak: Soak, tenant: Tenant) -> None:
    """A call between two of the tenant's phones, answered or not, hung up or left to end."""
    control, rng = soak.control, soak.rng
    numbers = sorted(soak.truth(tenant))
    idle = [n for n, (line, _) in soak.truth(tenant).items() if line == "idle"]
    if len(idle) < 2:
        return
    caller, callee = rng.sample(idle, 2)
    with contextlib.suppress(Exception):  # the phones may have changed meanwhile
        call = control.ring(tenant.account, caller, callee)
        time.sleep(rng.uniform(0.1, 0.5))
        if rng.random() < 0.7:
            control.answer(tenant.account, call["uuid"], callee)
            time.sleep(rng.uniform(0.1, 0.8))
        control.hangup(tenant.account, call["uuid"])
    assert numbers  # the tenant has phones at all


def one_round(soak: Soak, kind: str, caller: Caller, callees: list[int]) -> None:
    rng, control = soak.rng, soak.control
    tenant = rng.choice(soak.tenants)
    since = None  # when the link is back: the fault cleared, or the process started again
    if kind == "stream":
        fault: dict[str, Any] = {"kind": rng.choice(STREAM_FAULTS)}
        if fault["kind"] != "unauthorized":
            fault["stream"] = rng.choice(["all", "states", "calls"])
        if fault["kind"] == "malformed":
            fault["variant"] = rng.choice(["broken_json", "unknown_fields", "missing_fields"])
        control.inject_fault(tenant.account, **fault)
        ring_and_settle(soak, tenant)
        time.sleep(rng.uniform(0.5, 2.0))
        control.clear_faults(tenant.account)
        kind = f"stream {fault['kind']}"
    elif kind == "http_error":
        endpoint = rng.choice(["GET /extensions/phone/states", "GET /extensions/phone/calls"])
        control.inject_fault(
            tenant.account, "http_error", status=rng.choice([500, 502, 503]), endpoint=endpoint
        )
        control.inject_fault(tenant.account, "drop", stream="all")  # so the error is met
        time.sleep(rng.uniform(0.5, 2.0))
        control.clear_faults(tenant.account)
    elif kind == "refused_login":
        # The token is refused, and so are the next logins: the worker must keep trying.
        control.inject_fault(tenant.account, "http_error", status=401, endpoint="POST /login")
        control.inject_fault(tenant.account, "http_error", status=401, endpoint="PUT /login")
        control.inject_fault(tenant.account, "unauthorized")
        control.inject_fault(tenant.account, "drop", stream="all")
        time.sleep(rng.uniform(1.0, 3.0))
        control.clear_faults(tenant.account)
    elif kind == "clock":
        skew = rng.choice([-600.0, 600.0, 0.0])
        for each in soak.tenants:
            control.update_tenant(each.account, clock_skew=skew)
        control.inject_fault(tenant.account, "unauthorized")  # a fresh login on the new clock
        time.sleep(rng.uniform(1.0, 5.0))  # tokens live 4 s: renewals on the skewed clock
        kind = f"clock {skew:+.0f}s"
    elif kind == "calls_while_down":
        control.inject_fault(tenant.account, "stall", stream=rng.choice(["all", "calls"]))
        ring_and_settle(soak, tenant)
        if callees:
            caller.call(rng.choice(callees))
        ring_and_settle(soak, tenant)
        time.sleep(rng.uniform(0.5, 1.5))
        control.clear_faults(tenant.account)
    elif kind == "simulator_restart":
        assert soak.simulator is not None
        soak.simulator.stop(sig=signal.SIGKILL)
        time.sleep(rng.uniform(0.5, 3.0))
        soak.start_simulator()
        since = time.monotonic()  # from when the PBX answers again
    elif kind == "worker_kill":
        assert soak.worker is not None
        soak.worker.stop(signal.SIGKILL)
        time.sleep(rng.uniform(0.0, 2.0))
        # The same deploy's worker restarting (its identity), or a replacement's.
        same = rng.random() < 0.5
        soak.start_worker("soak-worker" if same else f"soak-worker-{len(soak.workers)}")
        since = time.monotonic()
        kind = "worker restart" if same else "worker replaced"
    else:
        raise AssertionError(kind)
    if since is None:
        since = time.monotonic()
    if rng.random() < 0.3 and callees:
        caller.call(rng.choice(callees))  # and a click-to-call while it repairs
    soak.repaired(kind, since)


def test_fault_soak(soak: Soak) -> None:
    print(f"fault soak: {SOAK_SECONDS:.0f}s, seed {SEED} (CTIBOARD_FAULT_SOAK_SEED repeats it)")
    busy = soak.tenants[0]
    try:
        wait_for(
            lambda: all(soak.stored(t) == soak.truth(t) for t in soak.tenants),
            60,
            "both tenants stored",
        )
        caller, callees = make_caller(soak, busy)
        for tenant in soak.tenants:
            soak.sockets[tenant.account] = BoardSocket(soak.web, tenant.account, caller.session)
        soak.repaired("start", time.monotonic())
        end = time.monotonic() + SOAK_SECONDS
        rounds = 0
        while time.monotonic() < end:
            one_round(soak, ROUNDS[rounds % len(ROUNDS)], caller, callees)
            rounds += 1

        # The end: no faults, no traffic, every call run out; nothing may dangle.
        for tenant in soak.tenants:
            soak.control.clear_faults(tenant.account)
            soak.control.update_tenant(tenant.account, clock_skew=0)
            soak.control.pause_traffic(tenant.account)
        wait_for(
            lambda: all(not soak.control.calls(t.account) for t in soak.tenants),
            30,
            "the simulator's calls ran out",
        )
        soak.repaired("end", time.monotonic())
        final_checks(soak, rounds)
        caller.close()
    except Exception as exc:
        raise AssertionError(f"{type(exc).__name__}: {exc}\n\n{soak.stack.dump()}") from exc


def final_checks(soak: Soak, rounds: int) -> None:
    ids = [t.tenant_id for t in soak.tenants]
    with psycopg.connect(soak.services.database_url, autocommit=True) as conn:

        def settled() -> bool:
            active = conn.execute(
                "SELECT count(*) FROM calls_activecall WHERE tenant_id = ANY(%s)", (ids,)
            ).fetchone()
            open_attempts = conn.execute(
                "SELECT count(*) FROM pbx_callattempt WHERE tenant_id = ANY(%s) "
                "AND status NOT IN ('end', 'failed')",
                (ids,),
            ).fetchone()
            return active == (0,) and open_attempts == (0,)

        wait_for(settled, 30, "no active call and no open call attempt is left")
        attempts = conn.execute(
            "SELECT status, count(*) FROM pbx_callattempt WHERE tenant_id = ANY(%s) "
            "GROUP BY status",
            (ids,),
        ).fetchall()
    assert soak.worker is not None and soak.worker.alive(), "the worker died on its own"
    for process in soak.stack.processes:
        if process.name.startswith("soak"):
            assert "Traceback" not in process.output(), f"{process.name} logged a traceback"
    figures = {
        kind: (len(times), statistics.median(times), max(times))
        for kind, times in sorted(soak.repairs.items())
    }
    everything = [t for kind, times in soak.repairs.items() for t in times if kind != "start"]
    print(f"fault soak: {rounds} rounds, call attempts by status {dict(attempts)}")
    for kind, (count, p50, worst) in figures.items():
        print(f"  {kind:<24} {count:>3} rounds  repaired p50 {p50:5.2f}s  max {worst:5.2f}s")
    print(
        f"  {'all':<24} {len(everything):>3} rounds  repaired p50 "
        f"{statistics.median(everything):5.2f}s  max {max(everything):5.2f}s"
    )
