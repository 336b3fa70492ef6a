"""With DEBUG off, the simulator is neither served nor mounted unless CTIBOARD_ALLOW_SIMULATOR=1
says so: manage.py simulate, manage.py demo and the embedded mount of asgi.py."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from ctiboard.demo.embedded import with_simulator
from ctiboard.simulator.testing import REPO_ROOT

REFUSED = "the PBX simulator runs only with DEBUG=1 or CTIBOARD_ALLOW_SIMULATOR=1"


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DEBUG", "CTIBOARD_ALLOW_SIMULATOR", "CTIBOARD_EMBEDDED_SIMULATOR")
    }
    return subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, *args],
        cwd=REPO_ROOT,
        env={
            **clean,
            "DJANGO_SETTINGS_MODULE": "ctiboard.settings",
            "CTIBOARD_DATA_DIR": str(tmp_path),
            "SECRET_KEY": "gate-test",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_simulate_refuses_to_start_outside_debug(tmp_path: Path) -> None:
    done = run(tmp_path, "manage.py", "simulate", "--port", "0")
    assert done.returncode != 0
    assert REFUSED in done.stderr


def test_the_demo_refuses_before_it_writes_anything(tmp_path: Path) -> None:
    done = run(tmp_path, "manage.py", "demo", "--port", "0")
    assert done.returncode != 0
    assert REFUSED in done.stderr
    # No database migrated, no demo users with a known password.
    assert not list(tmp_path.glob("*.sqlite3"))


def test_a_web_process_refuses_to_mount_it_outside_debug(tmp_path: Path) -> None:
    done = run(tmp_path, "-c", "import ctiboard.asgi", CTIBOARD_EMBEDDED_SIMULATOR="1")
    assert done.returncode != 0
    assert f"CTIBOARD_EMBEDDED_SIMULATOR=1: {REFUSED}" in done.stderr


def test_asked_for_or_in_debug_the_mount_is_served(tmp_path: Path) -> None:
    code = "import ctiboard.asgi as a; print(type(a.application.application_mapping['http']))"
    for env in ({"CTIBOARD_ALLOW_SIMULATOR": "1"}, {"DEBUG": "1"}):
        done = run(tmp_path, "-c", code, CTIBOARD_EMBEDDED_SIMULATOR="1", **env)
        assert done.returncode == 0, done.stderr
        assert "PrefixMount" in done.stdout


def test_the_mount_itself_refuses_when_not_allowed(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CTIBOARD_ALLOW_SIMULATOR = False
    with pytest.raises(ImproperlyConfigured, match="CTIBOARD_ALLOW_SIMULATOR=1"):
        with_simulator(lambda scope, receive, send: None)
