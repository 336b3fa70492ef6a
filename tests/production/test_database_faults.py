"""PostgreSQL faults against real processes: connections the server ends (pg_terminate_backend,
as a restart or failover does) and a database that refuses connections for a while.

A web request and a worker's next batch must not pay for a connection the server ended; a
worker cut off from the database keeps its tenants' changes and stores them once it is back,
without crashing a tenant. Each process names its role in ``application_name``.
"""

import contextlib
import time
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from ctiboard.simulator.testing import SimulatorProcess
from tests.conftest import unique_account

from .conftest import Process, Services, Stack, Web, seed, wait_for

pytestmark = [pytest.mark.production, pytest.mark.timeout(180)]

PASSWORD = "correct horse battery staple"


def admin(services: Services) -> psycopg.Connection:
    return psycopg.connect(services.admin_dsn, autocommit=True)


def sessions(services: Services) -> dict[int, str]:
    """pid -> application_name of every other session on the run's database."""
    with admin(services) as conn:
        rows = conn.execute(
            "SELECT pid, application_name FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            [services.database_name],
        ).fetchall()
    return {int(pid): str(name) for pid, name in rows}


def terminate(services: Services, application_name: str | None = None) -> list[str]:
    """End every session of the run's database (of one application); their names."""
    with admin(services) as conn:
        rows = conn.execute(
            "SELECT application_name, pid, pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()"
            " AND (%s::text IS NULL OR application_name = %s::text)",
            [services.database_name, application_name, application_name],
        ).fetchall()
        # pg_terminate_backend only signals: until a backend has exited, a pool's check on
        # its connection still succeeds (a busy machine makes that window long).
        pids = [pid for _, pid, _ in rows]
        wait_for(
            lambda: (
                not conn.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE pid = ANY(%s)", [pids]
                ).fetchall()
            ),
            10,
            "the ended sessions gone",
            interval=0.02,
        )
    return [str(name) for name, _, _ in rows]


@contextlib.contextmanager
def database_refused(services: Services) -> Iterator[None]:
    """The database is away: nobody may connect (superusers neither), sessions are ended."""
    name = services.database_name
    with admin(services) as conn:
        conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
    try:
        terminate(services)
        yield
    finally:
        with admin(services) as conn:
            conn.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')


def stored(services: Services, tenant_id: int) -> dict[str, tuple[str, str]]:
    dsn = make_conninfo(services.admin_dsn, dbname=services.database_name)
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT number, line, presence FROM pbx_extension WHERE tenant_id = %s AND active",
            [tenant_id],
        ).fetchall()
    return {str(number): (str(line), str(presence)) for number, line, presence in rows}


def truth(simulator: SimulatorProcess, account: str) -> dict[str, tuple[str, str]]:
    return {s["extension"]: (s["line"], s["presence"]) for s in simulator.control.states(account)}


def problems(process: Process) -> list[str]:
    """What a process must never log here: a crashed tenant, a failed round, a traceback."""
    return [
        line
        for line in process.output().splitlines()
        if "crashed" in line or "round failed" in line or "Traceback" in line
    ]


# --- the web ---------------------------------------------------------------------------


def test_a_web_request_after_the_server_ended_every_connection_succeeds(
    stack: Stack, services: Services
) -> None:
    account = unique_account()
    spec = {"username": "webuser", "password": PASSWORD, "base_url": "http://127.0.0.1:9"}
    seed(stack, {**spec, "tenants": {account: [f"{account}/u", "p"]}})
    web = stack.web("web-killed")
    session = web.login("webuser", PASSWORD)

    def page() -> int:
        url = f"{web.url}/t/{account}/"
        return httpx.get(url, cookies={"sessionid": session}, timeout=10).status_code

    assert page() == 200
    assert "ctiboard-web" in terminate(services), stack.dump()  # its pooled connection
    assert [page() for _ in range(5)] == [200] * 5, stack.dump()
    web.process.stop()
    assert not problems(web.process), stack.dump()


# --- the worker ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def streamed(
    stack: Stack, services: Services, simulator: SimulatorProcess
) -> Iterator[tuple[str, int, Process]]:
    """A tenant of the simulator, streamed by one worker whose lease (60 s) outlasts the
    outages below: the writer's own retries are under test, not a take-over."""
    account = unique_account()
    credentials = (f"{account}/ctiboard", f"secret-{account}")
    simulator.control.create_tenant(account, *credentials, extensions=4, seed=5, time_scale=0.02)
    spec = {"username": "streamer", "password": PASSWORD, "base_url": simulator.api_url}
    tenant_id = seed(stack, {**spec, "tenants": {account: list(credentials)}})[account]
    # A pool timeout of 1 s: attempts while the database refuses connections fail fast.
    worker = stack.worker("worker-faults", CTIBOARD_LEASE_TTL="60", DATABASE_POOL_TIMEOUT="1")
    wait_for(lambda: stored(services, tenant_id) == truth(simulator, account), 30, "caught up")
    yield account, tenant_id, worker
    worker.stop()
    with contextlib.suppress(Exception):
        simulator.control.delete_tenant(account)


def test_every_process_names_its_role_in_pg_stat_activity(
    stack: Stack, services: Services, streamed: tuple[str, int, Process]
) -> None:
    web: Web = stack.web("web-named")
    httpx.get(f"{web.url}/readyz", timeout=10)  # its first query opens the pool
    webhooks = stack.spawn("webhooks-named", "manage.py", "deliver_webhooks")
    expected = {"ctiboard-web", "ctiboard-worker", "ctiboard-webhooks"}
    seen: set[str] = set()

    def all_seen() -> bool:
        seen.update(sessions(services).values())
        return expected <= seen

    wait_for(all_seen, 30, f"sessions of {expected} (seen: {seen})")
    web.process.stop()
    webhooks.stop()


def test_the_next_batch_after_the_worker_lost_its_connections_is_stored(
    stack: Stack,
    services: Services,
    simulator: SimulatorProcess,
    streamed: tuple[str, int, Process],
) -> None:
    account, tenant_id, worker = streamed
    numbers = sorted(truth(simulator, account))
    for round_, presence in enumerate(["away", "dnd", "available"]):
        assert "ctiboard-worker" in terminate(services, "ctiboard-worker"), stack.dump()
        simulator.control.set_state(account, numbers[round_], presence=presence)
        wait_for(
            lambda: stored(services, tenant_id) == truth(simulator, account),
            10,
            f"the change after kill {round_ + 1} stored",
        )
    output = worker.output()
    assert not problems(worker), output
    # A connection the server ended is replaced before it is used: no retry was needed.
    assert "database unavailable" not in output, output


def test_a_worker_cut_off_from_the_database_keeps_the_changes_and_stores_them_after(
    stack: Stack,
    services: Services,
    simulator: SimulatorProcess,
    streamed: tuple[str, int, Process],
) -> None:
    account, tenant_id, worker = streamed
    opened = simulator.control.counters(account)["streams_opened"]
    numbers = sorted(truth(simulator, account))
    with database_refused(services):
        simulator.control.set_state(account, numbers[0], line="in-use", presence="busy")
        simulator.control.set_state(account, numbers[1], line="offline")
        wait_for(
            lambda: "database unavailable" in worker.output(), 10, "the worker noticed the outage"
        )
        time.sleep(5)  # attempts after 0, 0.5, 1 and 2 s (plus the pool's 1 s): one line
    wait_for(
        lambda: stored(services, tenant_id) == truth(simulator, account),
        30,
        "the changes held during the outage stored",
    )
    # The lease rounds' pooled connections were ended too: the pool replaces them unseen.
    back = len(worker.output())
    time.sleep(2)  # four lease rounds
    assert "round failed" not in worker.output()[back:], worker.output()[back:]
    output = worker.output()
    assert output.count(f"{account}: database unavailable") == 1, output
    assert f"{account}: database back after" in output, output
    assert not [line for line in problems(worker) if "crashed" in line], output
    # The tenant's streams ran on throughout: nothing crashed or was restarted.
    assert simulator.control.counters(account)["streams_opened"] == opened, output
