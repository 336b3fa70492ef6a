"""Readiness, metrics, JSON logs and the 1012 close, in-process (SQLite, in-memory layer)."""

import asyncio
import json
import logging
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from ctiboard.ingest.coverage import HANDOVER_GRACE
from ctiboard.ingest.leases import Leases
from ctiboard.lib.metrics import SOCKETS_OPEN
from ctiboard.ops.logs import JsonFormatter
from ctiboard.ops.sockets import CLOSE_SERVICE_RESTART
from ctiboard.tenancy.models import ConnectionStatus, IngestLease, IngestWorker, Tenant
from tests.board.support import connect
from tests.conftest import Company, make_company

REPO = Path(__file__).resolve().parents[2]


def test_json_formatter_writes_one_object_per_line() -> None:
    logger = logging.getLogger("tests.ops")
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        record = logger.makeRecord(
            "tests.ops",
            logging.WARNING,
            __file__,
            1,
            "tenant %s: %s",
            ("K1", "multi\nline"),
            sys.exc_info(),
            extra={"tenant": "K1"},
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "tests.ops"
    assert entry["message"] == "tenant K1: multi\nline"
    assert entry["tenant"] == "K1"
    assert "ValueError: bad" in entry["exception"]
    moment = datetime.fromisoformat(entry["time"])  # 2025-01-31T12:00:00.123Z
    assert entry["time"].endswith("Z") and moment.utcoffset() == timedelta(0)
    assert abs(moment.timestamp() - record.created) < 0.001


def test_log_format_json_is_used_and_a_typo_is_refused(tmp_path: Path) -> None:
    code = "import logging, django; django.setup(); logging.getLogger('probe').warning('hello')"
    env = {**os.environ, "CTIBOARD_DATA_DIR": str(tmp_path), "LOG_FORMAT": "json"}
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**env, "DJANGO_SETTINGS_MODULE": "ctiboard.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    entry = json.loads(done.stderr.strip().splitlines()[-1])
    assert (entry["logger"], entry["message"]) == ("probe", "hello")
    refused = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**env, "LOG_FORMAT": "yaml", "DJANGO_SETTINGS_MODULE": "ctiboard.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "LOG_FORMAT='yaml' must be plain or json" in refused.stderr


@pytest.mark.django_db(transaction=True)
def test_readyz_names_the_tenants_no_worker_holds() -> None:
    served = make_company(count=1).tenant
    orphan = make_company(count=1).tenant
    leases = Leases("worker-1", ttl=60)
    leases.heartbeat()
    assert leases.acquire(served.pk)

    response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == {"ok": True}
    assert body["checks"]["channel_layer"]["ok"] is True
    workers = body["checks"]["workers"]
    assert workers["ok"] is False
    assert workers["unserved"] == [orphan.account]
    assert workers["workers"] == ["worker-1"]
    # ... and the boards are told: nobody streams it.
    orphan.refresh_from_db()
    assert orphan.connection_status == ConnectionStatus.UNSERVED

    assert leases.acquire(orphan.pk)
    response = Client().get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "ready"


@pytest.mark.django_db(transaction=True)
def test_readyz_fails_when_the_holders_heartbeat_is_stale_though_its_lease_runs() -> None:
    tenant = make_company(count=1).tenant
    leases = Leases("worker-1", ttl=60)
    leases.heartbeat()
    assert leases.acquire(tenant.pk)
    Tenant.objects.filter(pk=tenant.pk).update(connection_status=ConnectionStatus.CONNECTED)
    assert Client().get("/readyz").status_code == 200

    IngestWorker.objects.filter(pk="worker-1").update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["workers"]["unserved"] == [tenant.account]
    tenant.refresh_from_db()
    assert tenant.connection_status == ConnectionStatus.UNSERVED
    assert tenant.status_payload()["connection_status"] == "unserved"


@pytest.mark.django_db(transaction=True)
def test_readyz_grants_a_released_tenant_a_grace_for_the_hand_over() -> None:
    tenant = make_company(count=1).tenant
    leases = Leases("worker-1", ttl=60)
    leases.heartbeat()
    assert leases.acquire(tenant.pk)
    leases.retire()  # a graceful stop: the peer takes it in its next round

    response = Client().get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json()["checks"]["workers"]["handing_over"] == [tenant.account]

    # Nobody took it within the grace: unserved after all.
    IngestLease.objects.filter(pk=tenant.pk).update(
        expires_at=timezone.now() - HANDOVER_GRACE - timedelta(seconds=1)
    )
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["workers"]["unserved"] == [tenant.account]


@pytest.mark.django_db
def test_metrics_are_prometheus_text() -> None:
    response = Client().get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    text = response.content.decode()
    for name in (
        "ctiboard_sockets_open",
        "ctiboard_push_latency_seconds_bucket",
        "ctiboard_events_ingested_total",
        "ctiboard_stream_reconnects_total",
    ):
        assert name in text or f"# TYPE {name.removesuffix('_total')}" in text, name


@pytest.mark.django_db(transaction=True)
async def test_a_socket_is_counted_and_closed_with_1012_when_the_server_cancels_it(
    owner: User, company: Company
) -> None:
    before = SOCKETS_OPEN._value.get()
    communicator = await connect(owner, company.tenant.account)
    connected, _ = await communicator.connect()
    assert connected
    await communicator.receive_from()  # the grid
    assert SOCKETS_OPEN._value.get() == before + 1

    # What Daphne does to every application instance on SIGTERM.
    communicator.future.cancel()
    await asyncio.gather(communicator.future, return_exceptions=True)
    close = communicator.output_queue.get_nowait()
    assert close == {"type": "websocket.close", "code": CLOSE_SERVICE_RESTART}
    assert SOCKETS_OPEN._value.get() == before


@pytest.mark.django_db(transaction=True)
async def test_a_refused_socket_is_neither_counted_nor_closed_twice(company: Company) -> None:
    before = SOCKETS_OPEN._value.get()
    communicator = await connect(None, company.tenant.account)
    connected, code = await communicator.connect()
    assert not connected and code == 4403
    await communicator.wait()
    assert SOCKETS_OPEN._value.get() == before


def test_probe_exit_codes() -> None:
    import http.server
    import threading

    from ctiboard.ops.probe import main

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        assert main(["probe", f"{base}/healthz"]) == 0
        assert main(["probe", f"{base}/readyz"]) == 1
        assert main(["probe", "file:///etc/passwd"]) == 2
    finally:
        server.shutdown()
    assert main(["probe", f"{base}/healthz"]) == 1, "nobody listens any more"
