"""`manage.py ingest` as a real process: SIGTERM and SIGINT close the streams, store what is
pending and exit 0."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import connection

from ctiboard.tenancy.models import ConnectionStatus, Tenant
from tests.conftest import Company, Pbx
from tests.ingest.support import stored

pytestmark = pytest.mark.django_db(transaction=True)

REPO = Path(__file__).resolve().parents[2]


def database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    if db["ENGINE"] == "django.db.backends.postgresql":
        return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    pytest.skip(f"no URL for {db['ENGINE']}")


def wait_for(check: Callable[[], bool], process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while not check():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{check.__doc__}; worker output:\n{log.read_text()}")
        time.sleep(0.05)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_worker_cleanly(
    pbx: Pbx, pbx_company: Company, signum: signal.Signals
) -> None:
    env = {**os.environ, "DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "ingest.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "ingest", "--poll-interval", "0.2"],
                cwd=REPO,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        try:

            def streaming() -> bool:
                """the worker streams the tenant"""
                tenant = Tenant.objects.get(pk=pbx_company.tenant.pk)
                return tenant.connection_status == ConnectionStatus.CONNECTED

            wait_for(streaming, process, log)
            number = pbx_company.extensions[3].number
            pbx.control.set_state(pbx.account, number, line="in-use", presence="away")

            def caught_up() -> bool:
                """the worker stored the simulator's truth"""
                return stored(pbx_company) == pbx.truth()

            wait_for(caught_up, process, log)
            process.send_signal(signum)
            returncode = process.wait(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        output_text = log.read_text()

    assert returncode == 0, output_text
    assert "ingest worker stopped" in output_text and "Traceback" not in output_text, output_text
    tenant = Tenant.objects.get(pk=pbx_company.tenant.pk)
    assert (tenant.connection_status, tenant.status_detail) == (
        ConnectionStatus.RECONNECTING,
        "the ingest worker stopped",
    )
    assert pbx.control.counters(pbx.account)["open_streams"]["states"] == 0
