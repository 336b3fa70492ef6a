"""LOG_FORMAT=json covers every line a process writes: Django's and our loggers, Daphne's access
log, a worker's last words after SIGTERM, an uncaught exception in any thread. Each line is one
JSON object whose time is UTC ISO 8601 with ``Z``, and which names the process's role."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]


def environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    return {
        **env,
        "DJANGO_SETTINGS_MODULE": "ctiboard.settings",
        "PYTHONUNBUFFERED": "1",
        "CTIBOARD_DATA_DIR": str(tmp_path),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "HTTPS": "0",
    }


def entries(output: str) -> list[dict[str, Any]]:
    """Every line parsed; each must be a JSON object with a UTC time."""
    parsed = []
    for line in output.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            raise AssertionError(f"not JSON: {line!r}\nin:\n{output}") from None
        assert entry["time"].endswith("Z"), line
        assert datetime.fromisoformat(entry["time"]).utcoffset() == timedelta(0), line
        parsed.append(entry)
    assert parsed, "no output at all"
    return parsed


def started(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(  # noqa: S603 - our own interpreter
            [sys.executable, *args], cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT
        )


def wait_for_line(log: Path, text: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while text not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"no {text!r}:\n{log.read_text()}")
        time.sleep(0.05)


def stopped(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


CRASH = """
import threading, django
django.setup()
thread = threading.Thread(target=lambda: 1 / 0, name="doomed")
thread.start()
thread.join()
raise RuntimeError("the last words")
"""


def test_uncaught_exceptions_are_json_records(tmp_path: Path) -> None:
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", CRASH],
        cwd=REPO,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    crashes = [e for e in entries(done.stderr + done.stdout) if e["logger"] == "ctiboard.crash"]
    assert [e["level"] for e in crashes] == ["CRITICAL", "CRITICAL"], crashes
    assert "ZeroDivisionError" in crashes[0]["exception"]
    assert "RuntimeError: the last words" in crashes[1]["exception"]


def test_a_malformed_setting_is_reported_as_json(tmp_path: Path) -> None:
    env = {**environment(tmp_path), "CTIBOARD_GC_THRESHOLD": "lots"}
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    (crash,) = entries(done.stderr)
    assert "CTIBOARD_GC_THRESHOLD='lots'" in crash["exception"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_daphne_logs_its_access_log_as_json(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "web.log"
    args = ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "ctiboard.asgi:application"]
    process = started(args, environment(tmp_path), log)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
                break
            except httpx.HTTPError:
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        assert httpx.get(f"http://127.0.0.1:{port}/no-such-page", timeout=5).status_code == 404
    finally:
        stopped(process)
    logged = entries(log.read_text())
    access = [e for e in logged if e["logger"] == "daphne.access"]
    assert {e["request"] for e in access} >= {"GET /healthz", "GET /no-such-page"}, logged
    assert {e["status"] for e in access} >= {200, 404}
    assert {e["role"] for e in logged} == {"web"}


@pytest.mark.timeout(180)
def test_a_worker_logs_json_up_to_its_last_words(tmp_path: Path) -> None:
    env = environment(tmp_path)
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert migrate.returncode == 0, migrate.stderr
    log = tmp_path / "worker.log"
    process = started(["manage.py", "ingest", "--poll-interval", "0.2"], env, log)
    wait_for_line(log, "ingest worker started", process)
    assert stopped(process) == 0
    logged = entries(log.read_text())
    assert any(e["message"] == "ingest worker stopped" for e in logged), logged
    assert {e["role"] for e in logged} == {"worker"}
