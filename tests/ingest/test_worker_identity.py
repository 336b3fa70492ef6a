"""`manage.py ingest` as real processes under one ``CTIBOARD_WORKER_ID``: a restarted worker
resumes its tenant without waiting out the lease ttl, and a second live process with the same
id is refused while the first keeps streaming."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ctiboard.ingest.health import WorkerHealth
from ctiboard.tenancy.models import ConnectionStatus, IngestLease, IngestWorker, Tenant
from tests.conftest import Company, Pbx
from tests.ingest.support import stored
from tests.ingest.test_ingest_shutdown import REPO, database_url, wait_for

pytestmark = pytest.mark.django_db(transaction=True)

TTL = 30  # long: resuming "at once" must not mean "after the ttl"


def start(log: Path, worker_id: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "PYTHONUNBUFFERED": "1",
        "CTIBOARD_WORKER_ID": worker_id,
        "CTIBOARD_LEASE_TTL": str(TTL),
    }
    with log.open("ab") as output:
        return subprocess.Popen(
            [sys.executable, "manage.py", "ingest", "--poll-interval", "0.2"],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


def streams(pbx: Pbx) -> int:
    return int(pbx.control.counters(pbx.account)["open_streams"]["states"])


def test_a_restarted_worker_resumes_its_tenant_at_once(
    pbx: Pbx, pbx_company: Company, tmp_path: Path
) -> None:
    log = tmp_path / "ingest.log"
    first = start(log, "restarting")
    second = None
    try:

        def streaming() -> bool:
            """the first run streams the tenant"""
            tenant = Tenant.objects.get(pk=pbx_company.tenant.pk)
            return tenant.connection_status == ConnectionStatus.CONNECTED and streams(pbx) == 1

        wait_for(streaming, first, log)
        before = IngestWorker.objects.get(pk="restarting").incarnation
        first.kill()
        first.wait()
        deadline = time.monotonic() + 20
        while streams(pbx) != 0:  # the PBX saw the killed stream close
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)

        restarted = time.monotonic()
        second = start(log, "restarting")

        def resumed() -> bool:
            """the restarted run streams the tenant under the same lease"""
            return streams(pbx) == 1

        wait_for(resumed, second, log)
        took = time.monotonic() - restarted
        assert took < TTL / 2, f"resumed after {took:.1f}s: it waited for the lease to expire"
        assert IngestWorker.objects.get(pk="restarting").incarnation != before
        assert IngestLease.objects.get(pk=pbx_company.tenant.pk).holder == "restarting"
        number = pbx_company.extensions[2].number
        pbx.control.set_state(pbx.account, number, line="ringing", presence="dnd")

        def caught_up() -> bool:
            """the restarted worker stored the simulator's truth"""
            return stored(pbx_company) == pbx.truth()

        wait_for(caught_up, second, log)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()


def test_a_second_live_worker_with_the_same_id_is_refused(
    pbx: Pbx, pbx_company: Company, tmp_path: Path
) -> None:
    log = tmp_path / "ingest.log"
    first = start(log, "only-one")
    try:

        def streaming() -> bool:
            """the first worker streams the tenant"""
            return streams(pbx) == 1

        wait_for(streaming, first, log)
        clash = tmp_path / "clash.log"
        second = start(clash, "only-one")
        returncode = second.wait(timeout=60)
        assert returncode != 0
        assert "worker id only-one is in use by a live ingest worker" in clash.read_text()
        assert first.poll() is None, log.read_text()
        assert streams(pbx) == 1
        assert IngestLease.objects.get(pk=pbx_company.tenant.pk).holder == "only-one"
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=20) == 0, log.read_text()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


def test_worker_health_needs_a_recent_heartbeat_and_layer_round_trip() -> None:
    health = WorkerHealth()
    health.dead_after = 3.0
    assert len(health.problems(now=100.0)) == 2, "nothing achieved yet"
    health.heartbeat_at = health.layer_at = 100.0
    assert health.problems(now=102.0) == []
    assert health.problems(now=104.0) == ["database: no heartbeat within 3s"]
    health.heartbeat_at = 104.0
    health.layer_error = "a message sent through the layer never came back"
    assert health.problems(now=130.0)[-1].startswith("channel layer: a message sent")
