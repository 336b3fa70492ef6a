"""Processes, ports, services and /proc readings shared by every measure.

Every process the bench starts is a child of this one, listens on 127.0.0.1 only, logs to a
file in the run's work directory and is stopped (SIGTERM, then SIGKILL) when its measure ends.
"""

import contextlib
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

REPO = Path(__file__).resolve().parents[1]
# Every command the bench ran, ports and paths generalised, for the results file.
COMMANDS: dict[str, None] = {}


def remember(args: tuple[str, ...]) -> None:
    import re

    text = " ".join(["python", *args])
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", text)
    text = re.sub(r"(--port|-p) \d+", r"\1 PORT", text)
    text = re.sub(r"/\S*/(bench-work|tmp)\S*", "WORKDIR/…", text)
    COMMANDS[text] = None


PG_HOST, PG_PORT = "127.0.0.1", 5432
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy, or raise naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout:g}s: {what}")
        time.sleep(interval)


# --- /proc --------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (not its children), in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as statm:
        return int(statm.read().split()[1]) * PAGE_SIZE


def machine_cpu_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, over all cores."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return (total - idle) / CLOCK_TICKS, total / CLOCK_TICKS


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (children, grandchildren, ...)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def command_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as comm:
            return comm.read().strip()
    except OSError:
        return ""


class CpuMeter:
    """CPU use of some processes and of the machine over a window."""

    def __init__(self, pids: dict[str, int], groups: dict[str, list[int]] | None = None) -> None:
        self.pids = pids
        self.groups = groups or {}  # e.g. every Chromium process, summed
        self._start = self._read()

    def _read(self) -> tuple[float, dict[str, float], tuple[float, float]]:
        per = {}
        for name, pid in self.pids.items():
            with contextlib.suppress(OSError):
                per[name] = cpu_seconds(pid)
        for name, members in self.groups.items():
            for pid in members:
                with contextlib.suppress(OSError):
                    per[f"{name}/{pid}"] = cpu_seconds(pid)
        return time.monotonic(), per, machine_cpu_seconds()

    def stop(self) -> dict[str, float]:
        """Cores busy on average: per process, and ``machine`` for everything."""
        end = self._read()
        wall = max(1e-9, end[0] - self._start[0])
        result = {
            name: round((end[1][name] - self._start[1][name]) / wall, 3)
            for name in self.pids
            if name in end[1] and name in self._start[1]
        }
        for name, members in self.groups.items():
            # Only processes alive at both ends: one that exited took its CPU time with it.
            keys = [f"{name}/{pid}" for pid in members]
            both = [k for k in keys if k in end[1] and k in self._start[1]]
            result[name] = round(sum(end[1][k] - self._start[1][k] for k in both) / wall, 3)
        busy = end[2][0] - self._start[2][0]
        result["machine"] = round(busy / wall, 3)
        return result


# --- processes ----------------------------------------------------------------------------


@dataclass
class Process:
    """A child process whose output goes to a file (no pipe to fill)."""

    name: str
    popen: "subprocess.Popen[bytes]"
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self, tail: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-tail:]
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode


@dataclass
class Stack:
    """The environment and the processes of one topology under test."""

    env: dict[str, str]
    workdir: Path
    processes: list[Process] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)

    def spawn(self, name: str, *args: str, **env: str) -> Process:
        log = self.workdir / f"{name}.log"
        remember(args)
        with log.open("wb") as sink:
            popen = subprocess.Popen(  # noqa: S603 - our own interpreter and modules
                [sys.executable, *args],
                cwd=REPO,
                env={**self.env, **env},
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def run(self, *args: str, timeout: float = 300, **env: str) -> str:
        remember(args)
        done = subprocess.run(  # noqa: S603 - our own interpreter and modules
            [sys.executable, *args],
            cwd=REPO,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args[:3])} failed ({done.returncode}):\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done.stdout

    def healthy(self, process: Process, url: str, timeout: float = 60) -> None:
        def check() -> bool:
            if not process.alive():
                raise RuntimeError(f"{process.name} exited:\n{process.output()}")
            try:
                return httpx.get(url, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(check, timeout, f"{process.name} answers {url}", interval=0.2)

    def daphne(self, name: str = "web", **env: str) -> tuple[str, Process]:
        port = free_port()
        process = self.spawn(
            name,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "ctiboard.asgi:application",
            **env,
        )
        url = f"http://127.0.0.1:{port}"
        self.healthy(process, f"{url}/healthz")
        return url, process

    def simulator(self, name: str = "simulator", *flags: str) -> tuple[str, Process]:
        """``manage.py simulate`` on a free port; returns its base URL."""
        port = free_port()
        process = self.spawn(
            name, "manage.py", "simulate", "--host", "127.0.0.1", "--port", str(port), *flags
        )
        url = f"http://127.0.0.1:{port}"
        self.healthy(process, f"{url}/_sim/tenants")
        return url, process

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()

    def __enter__(self) -> "Stack":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def base_env(workdir: Path, **extra: str) -> dict[str, str]:
    """The environment of a ctiboard process: SQLite in ``workdir``, in-memory layer."""
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ctiboard.settings",
        "PYTHONUNBUFFERED": "1",
        "CTIBOARD_DATA_DIR": str(workdir / "data"),
        "SECRET_KEY": secrets.token_urlsafe(40),
        "CTIBOARD_DEMO_PASSWORD": "bench-demo-pw",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(REPO),
        # Plain HTTP on 127.0.0.1: no secure-only cookies (TLS is not what is measured).
        "HTTPS": "0",
        # The bench runs manage.py simulate and demo (DEBUG is off).
        "CTIBOARD_ALLOW_SIMULATOR": "1",
    }
    for name in (
        "DATABASE_URL",
        "REDIS_URL",
        "CTIBOARD_STATIC_MANIFEST",
        "CTIBOARD_EMBEDDED_SIMULATOR",
        "DEBUG",
        "CTIBOARD_METRICS_PORT",
    ):
        env.pop(name, None)
    env.update(extra)
    return env


def login(url: str, username: str, password: str) -> str:
    """The session cookie of a real login through the form (CSRF token and all)."""
    with httpx.Client(base_url=url, timeout=30) as client:
        client.get("/login/").raise_for_status()
        response = client.post(
            "/login/?next=/",
            data={
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": client.cookies["csrftoken"],
            },
        )
        if response.status_code != 302:
            raise RuntimeError(f"login of {username} failed: {response.status_code}")
        return str(client.cookies["sessionid"])


# --- PostgreSQL and Redis ------------------------------------------------------------------


def postgres_admin() -> tuple[str | None, str]:
    """A DSN that may create databases, or None and why not."""
    try:
        import psycopg
    except ImportError as exc:
        return None, str(exc)
    errors = []
    for user in ("postgres", "root"):
        for dbname in ("postgres", "template1"):
            dsn = f"host={PG_HOST} port={PG_PORT} user={user} dbname={dbname} connect_timeout=3"
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute("SELECT 1")
                return dsn, ""
            except psycopg.Error as exc:
                errors.append(f"{user}@{dbname}: {str(exc).strip().splitlines()[0]}")
    return None, "; ".join(errors)


def redis_reachable() -> str:
    """'' when Redis answers PING on 127.0.0.1:6379, else why not."""
    try:
        import redis
    except ImportError as exc:
        return str(exc)
    try:
        client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, socket_connect_timeout=3)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        return str(exc)
    return ""


@contextlib.contextmanager
def postgres_database(admin_dsn: str) -> Iterator[str]:
    """A fresh database of this run's own, dropped afterwards; yields its DATABASE_URL."""
    import psycopg

    name = f"ctiboard_bench_{os.getpid()}_{secrets.token_hex(3)}"
    user = dict(item.split("=") for item in admin_dsn.split())["user"]
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgres://{user}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def production_env(workdir: Path, database_url: str | None) -> dict[str, str]:
    """Environment of the Redis topology: pub/sub channel layer with a prefix of this run."""
    extra = {
        "REDIS_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/0",
        "CTIBOARD_CHANNEL_PREFIX": f"ctiboard-bench-{os.getpid()}-{secrets.token_hex(3)}",
    }
    if database_url:
        extra["DATABASE_URL"] = database_url
    return base_env(workdir, **extra)
