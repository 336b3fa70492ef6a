"""The production topology as real processes: Daphne web processes and ``manage.py ingest``
workers on the PostgreSQL and Redis of 127.0.0.1, against the simulator.

Every run gets a database of its own (created here, dropped after) and a channel-layer prefix
of its own, so parallel runs on one machine never see each other. Without PostgreSQL or Redis
the tests that need them are skipped, and ``pytest -ra`` prints why.
"""

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.procs import login as form_login

REPO = Path(__file__).resolve().parents[2]
PG_HOST, PG_PORT = "127.0.0.1", 5432
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g}s: {what}")
        time.sleep(interval)


# --- services ----------------------------------------------------------------------------


def _postgres_admin() -> tuple[str | None, str]:
    """A DSN that may create databases, or None and why not."""
    import psycopg

    errors = []
    for user in ("postgres", "root"):
        for dbname in ("postgres", "test"):
            dsn = f"host={PG_HOST} port={PG_PORT} user={user} dbname={dbname} connect_timeout=3"
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute("SELECT 1")
                return dsn, ""
            except psycopg.Error as exc:
                errors.append(f"{user}@{dbname}: {str(exc).strip().splitlines()[0]}")
    return None, "; ".join(errors)


def _redis_reachable() -> str:
    """'' when Redis answers PING, else why not."""
    import redis

    try:
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=3)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        return str(exc)
    return ""


@dataclass(frozen=True)
class Services:
    admin_dsn: str
    database_url: str
    database_name: str
    redis_url: str
    channel_prefix: str


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    """A fresh PostgreSQL database and a Redis prefix of this run's own, or a skip."""
    import psycopg

    admin_dsn, why = _postgres_admin()
    if admin_dsn is None:
        pytest.skip(
            f"production tests skipped: PostgreSQL at {PG_HOST}:{PG_PORT} is unreachable ({why})"
        )
    why = _redis_reachable()
    if why:
        pytest.skip(f"production tests skipped: Redis at {REDIS_HOST}:{REDIS_PORT}: {why}")
    tag = f"{os.getpid()}_{secrets.token_hex(3)}"
    name = f"ctiboard_prodtest_{tag}"
    user = dict(item.split("=") for item in admin_dsn.split())["user"]
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield Services(
            admin_dsn=admin_dsn,
            database_url=f"postgres://{user}@{PG_HOST}:{PG_PORT}/{name}",
            database_name=name,
            redis_url=f"redis://{REDIS_HOST}:{REDIS_PORT}/0",
            channel_prefix=f"ctiboard-prodtest-{tag}",
        )
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- processes ---------------------------------------------------------------------------


@dataclass
class Process:
    """A subprocess whose output goes to a file (no pipe to fill), stopped at teardown."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode


@dataclass
class Stack:
    """Environment and processes of one topology."""

    env: dict[str, str]
    logs: Path
    processes: list[Process] = field(default_factory=list)

    def spawn(self, name: str, *args: str, **env: str) -> Process:
        log = self.logs / f"{name}.log"
        with log.open("wb") as sink:
            popen = subprocess.Popen(  # noqa: S603 - our own interpreter and manage.py
                [sys.executable, *args],
                cwd=REPO,
                env={**self.env, **env},
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def run(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(  # noqa: S603 - our own interpreter and manage.py
            [sys.executable, *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def web(self, name: str, **env: str) -> "Web":
        port = free_port()
        daphne = ("-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "ctiboard.asgi:application")
        process = self.spawn(name, *daphne, **env)
        web = Web(f"http://127.0.0.1:{port}", process)

        def healthy() -> bool:
            if not process.alive():
                raise AssertionError(f"{name} exited:\n{process.output()}")
            try:
                return httpx.get(f"{web.url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, 30, f"{name} answers /healthz")
        return web

    def worker(self, name: str, **env: str) -> Process:
        # A worker's identity is what a deploy gives it: here its name, unless told otherwise.
        env.setdefault("CTIBOARD_WORKER_ID", name)
        return self.spawn(name, "manage.py", "ingest", "--poll-interval", "0.5", **env)

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()

    def dump(self) -> str:
        return "\n".join(
            f"===== {p.name} (pid {p.pid}) =====\n{p.output()[-4000:]}" for p in self.processes
        )


@dataclass
class Web:
    url: str
    process: Process

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")

    def login(self, username: str, password: str) -> str:
        return form_login(self.url, username, password)


SEED = """
import json, sys
import django
django.setup()
from django.contrib.auth.models import User
from ctiboard.tenancy.models import Extension, Membership, Tenant

spec = json.loads(sys.argv[1])
user = User.objects.create_user(username=spec["username"], password=spec["password"])
out = {}
for account, credentials in spec["tenants"].items():
    tenant = Tenant.objects.create(
        name=f"Company {account}", account=account, api_base_url=spec["base_url"],
        api_username=credentials[0], api_password=credentials[1],
    )
    Membership.objects.create(user=user, tenant=tenant, sees_all_extensions=True)
    out[account] = tenant.pk
print(json.dumps(out))
"""


def seed(stack: Stack, spec: dict[str, Any]) -> dict[str, int]:
    """Tenants and a user who sees them all, written by a process of the stack's own settings
    (API passwords are encrypted with its SECRET_KEY)."""
    return json.loads(stack.run("-c", SEED, json.dumps(spec)).strip().splitlines()[-1])


@contextlib.contextmanager
def running_stack(services: Services, logs: Path, **overrides: str) -> Iterator[Stack]:
    """A topology's environment on the session's database, migrated; its processes stopped
    and the database's tenants disabled at the end."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ctiboard.settings",
        "PYTHONUNBUFFERED": "1",
        "DATABASE_URL": services.database_url,
        "REDIS_URL": services.redis_url,
        "CTIBOARD_CHANNEL_PREFIX": services.channel_prefix,
        "CTIBOARD_DATA_DIR": str(logs / "data"),
        "SECRET_KEY": secrets.token_urlsafe(40),
        "CTIBOARD_LEASE_TTL": "2",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "HTTPS": "0",  # plain HTTP on 127.0.0.1
    }
    env.update(overrides)
    for name in ("CTIBOARD_STATIC_MANIFEST", "CTIBOARD_EMBEDDED_SIMULATOR", "DEBUG"):
        env.pop(name, None)
    running = Stack(env=env, logs=logs)
    running.run("manage.py", "migrate", "--noinput", "-v", "0")
    try:
        yield running
    finally:
        running.stop_all()
        # The database is the session's: the next module's workers (another SECRET_KEY) must
        # not find tenants whose credentials they cannot decrypt, or count them as unserved.
        import psycopg

        with psycopg.connect(services.admin_dsn, dbname=services.database_name) as conn:
            conn.execute("UPDATE pbx_tenant SET enabled = false")


@pytest.fixture(scope="module")
def stack(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(services, tmp_path_factory.mktemp("production")) as running:
        yield running
