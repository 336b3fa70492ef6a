"""Login throttling as a person at the demo meets it in Chromium: the locked page instead of
the form, on the board's login and the admin's, the right password refused meanwhile.

A demo of its own: every browser here comes from 127.0.0.1, so the lock of this address would
lock the other tests' demo too."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import REPO, Demo, free_port, start_demo, stop_demo

pytestmark = pytest.mark.browser

LOCKED = "Too many failed logins for this user or from this address."


@pytest.fixture(scope="module")
def lockable_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Demo, Path]]:
    data = tmp_path_factory.mktemp("lock-demo")
    running = start_demo(
        data, free_port(), CTIBOARD_DEMO_TRAFFIC_RATE="0", CTIBOARD_LOGIN_FAILURE_LIMIT="3"
    )
    yield running, data
    stop_demo(running)


def demo_env(data: Path) -> dict[str, str]:
    """The demo's own settings (its SQLite in ``data``), for a management command."""
    env = {
        **os.environ,
        "CTIBOARD_DATA_DIR": str(data),
        "DJANGO_SETTINGS_MODULE": "ctiboard.settings",
    }
    env.pop("DATABASE_URL", None)
    return env


def submit(page: Any, url: str, username: str, password: str) -> None:
    page.goto(url)
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_load_state()


def test_a_locked_login_says_so_and_refuses_the_right_password(
    browser: Any, lockable_demo: tuple[Demo, Path]
) -> None:
    demo, data = lockable_demo
    page = browser.new_page()
    for _ in range(2):
        submit(page, f"{demo.url}/login/", "alice", "guess")
        assert page.locator("p.error[role=alert]").count() == 1
        assert LOCKED not in page.content()
    submit(page, f"{demo.url}/login/", "alice", "guess")
    assert page.locator("h1").inner_text() == "Login locked"
    assert LOCKED in page.locator("p.error[role=alert]").inner_text()

    # Alice with her password, and the admin from the same address: refused until the end.
    submit(page, f"{demo.url}/login/", "alice", "demo")
    assert page.locator("h1").inner_text() == "Login locked"
    # The admin signs in on the same login page (ctiboard.accounts.login.admin_login).
    submit(page, f"{demo.url}/admin/login/", "admin", "demo")
    assert page.locator("h1").inner_text() == "Login locked"
    assert page.url.endswith("/login/")

    # Unlocked from the shell (every browser here shares 127.0.0.1: no admin page to reach).
    subprocess.run(
        [sys.executable, "manage.py", "axes_reset"],
        cwd=REPO,
        env=demo_env(data),
        check=True,
        capture_output=True,
        timeout=60,
    )
    submit(page, f"{demo.url}/login/", "alice", "demo")
    page.wait_for_selector("#socket-status[data-state=live]", timeout=10_000)
    page.close()
