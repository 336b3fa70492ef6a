"""/metrics and the details of /readyz: the bearer token, or loopback callers without one; the
worker's metrics port the same. Anyone else: 401, or the readiness status alone."""

import socket
from collections.abc import Iterator

import httpx
import pytest
from django.contrib.auth.models import User
from django.test import Client

from ctiboard.ingest import health
from tests.conftest import PASSWORD, make_company

TOKEN = "s3cret-metrics-token-0123456789"
REMOTE = "203.0.113.9"


@pytest.fixture
def token(settings) -> str:  # type: ignore[no-untyped-def]
    settings.CTIBOARD_METRICS_TOKEN = TOKEN
    return TOKEN


def metrics(remote: str = "127.0.0.1", authorization: str | None = None) -> int:
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    response = Client(REMOTE_ADDR=remote).get("/metrics", **headers)
    if response.status_code == 401:
        assert response["WWW-Authenticate"].startswith("Bearer ")
        assert b"ctiboard_" not in response.content
    return response.status_code


def test_without_a_token_only_the_machine_itself_reads_metrics() -> None:
    assert metrics() == 200
    assert metrics(remote="::1") == 200
    assert metrics(remote=REMOTE) == 401
    assert metrics(remote=REMOTE, authorization=f"Bearer {TOKEN}") == 401
    assert metrics(remote="") == 401


def test_with_a_token_only_its_bearer_reads_metrics(token: str) -> None:
    assert metrics(remote=REMOTE, authorization=f"Bearer {token}") == 200
    assert metrics(remote=REMOTE, authorization=f"bearer  {token} ") == 200
    # The machine itself too needs it once a token is configured.
    assert metrics() == 401
    for wrong in (f"Bearer {token}x", f"Basic {token}", token, "Bearer ", "Bearer ünïcødé"):
        assert metrics(remote=REMOTE, authorization=wrong) == 401, wrong


@pytest.mark.django_db(transaction=True)
def test_readyz_tells_others_the_status_and_nothing_else(token: str) -> None:
    tenant = make_company(count=1).tenant
    for client in (Client(REMOTE_ADDR=REMOTE), Client()):
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable"}

    detailed = Client(REMOTE_ADDR=REMOTE).get("/readyz", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert detailed.status_code == 503
    assert detailed.json()["checks"]["workers"]["unserved"] == [tenant.account]


@pytest.mark.django_db(transaction=True)
def test_staff_get_no_readiness_details_either() -> None:
    """A staff user may administer one tenant only: the others' K-Accounts are not his."""
    tenant = make_company(count=1).tenant
    staff = User.objects.create_user("staff", password=PASSWORD, is_staff=True)
    client = Client(REMOTE_ADDR=REMOTE)
    assert client.login(username=staff.username, password=PASSWORD)
    response = client.get("/readyz")
    assert response.json() == {"status": "unavailable"}
    assert tenant.account not in response.content.decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def worker_port() -> Iterator[int]:
    port = free_port()
    server = health.serve(port, "127.0.0.1", TOKEN)
    yield port
    server.shutdown()
    server.server_close()


def test_the_workers_metrics_port_wants_the_token_and_its_healthz_does_not(
    worker_port: int,
) -> None:
    base = f"http://127.0.0.1:{worker_port}"
    refused = httpx.get(f"{base}/metrics", timeout=5)
    assert refused.status_code == 401 and "ctiboard_" not in refused.text
    assert refused.headers["WWW-Authenticate"].startswith("Bearer ")
    granted = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert granted.status_code == 200 and "ctiboard_ingest_leases_held" in granted.text
    # Liveness stays open for the container's probe (it says 503 here: no heartbeat yet).
    assert httpx.get(f"{base}/healthz", timeout=5).status_code in (200, 503)


def test_without_a_token_the_workers_metrics_answer_loopback() -> None:
    port = free_port()
    server = health.serve(port, "127.0.0.1", None)
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).status_code == 200
    finally:
        server.shutdown()
        server.server_close()
