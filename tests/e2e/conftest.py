"""The demo exactly as a newcomer runs it (``manage.py demo``), driven by real Chromium."""

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def wait_for_js(page: Any, expression: str, timeout: float = 10.0) -> Any:
    """Poll a JavaScript expression until it is truthy; returns its value.

    Not ``page.wait_for_function``: when its first check is false it polls through ``eval``
    in the page, which the board's Content-Security-Policy refuses (a flaky EvalError).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {expression}")
        page.wait_for_timeout(50)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Demo:
    url: str
    process: subprocess.Popen[str]

    @property
    def control(self) -> str:
        return f"{self.url}/pbx-simulator/_sim"


def start_demo(data_dir: Path, port: int, **env: str) -> Demo:
    environment = {
        **os.environ,
        "CTIBOARD_DATA_DIR": str(data_dir),
        "CTIBOARD_DEMO_PASSWORD": "demo",
        "CTIBOARD_ALLOW_SIMULATOR": "1",
        "DJANGO_SETTINGS_MODULE": "ctiboard.settings",
        "PYTHONUNBUFFERED": "1",
        **env,
    }
    environment.pop("DATABASE_URL", None)
    environment.pop("REDIS_URL", None)
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, "manage.py", "demo", "--port", str(port)],
        cwd=REPO,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    demo = Demo(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"demo exited early:\n{process.stdout.read() if process.stdout else ''}"
            )
        try:
            if httpx.get(f"{demo.url}/healthz", timeout=1).status_code == 200:
                return demo
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("demo did not become healthy within 60 s")


def stop_demo(demo: Demo) -> str:
    demo.process.terminate()
    try:
        output, _ = demo.process.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        demo.process.kill()
        output, _ = demo.process.communicate()
    return output


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    running = start_demo(
        tmp_path_factory.mktemp("demo"), free_port(), CTIBOARD_DEMO_TRAFFIC_RATE="0"
    )
    yield running
    stop_demo(running)


# Module scope: Playwright's sync API keeps an event loop running in the main thread while it
# is open, which would break asyncio.run() in tests collected after the browser tests.
@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()
