"""A web process on PostgreSQL takes its connections from a pool (DATABASE_POOL_SIZE).

Without one, every request and every board socket's connect opened a PostgreSQL session of
its own (a new backend process each): a reconnect storm after a deploy was a storm of
connections too. PostgreSQL counts the sessions it has opened per database
(``pg_stat_database.sessions``), so the test reads the count around a burst of page loads
and socket connects, with the pool and without.
"""

import time

import httpx
import psycopg
import pytest
from websockets.sync.client import connect

from tests.conftest import unique_account

from .conftest import Services, Stack, Web, seed

pytestmark = [pytest.mark.production, pytest.mark.timeout(120)]

PASSWORD = "correct horse battery staple"
FORGET = """
import sys
import django
django.setup()
from django.contrib.auth.models import User
from ctiboard.tenancy.models import Tenant
Tenant.objects.filter(account=sys.argv[1]).delete()
User.objects.filter(username=sys.argv[2]).delete()
"""
SOCKETS, PAGES = 20, 10


def sessions_opened(services: Services) -> int:
    with psycopg.connect(services.admin_dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = %s", [services.database_name]
        ).fetchone()
    assert row is not None
    return int(row[0])


def burst(web: Web, services: Services, account: str, username: str) -> int:
    """Page loads and socket connects of one logged-in user; the sessions PostgreSQL opened."""
    session = web.login(username, PASSWORD)
    before = sessions_opened(services)
    for _ in range(PAGES):
        page = httpx.get(f"{web.url}/t/{account}/", cookies={"sessionid": session}, timeout=10)
        assert page.status_code == 200
        assert 'id="grid-version"' in page.text
    for _ in range(SOCKETS):
        with connect(
            f"{web.ws_url}/ws/board/{account}/",
            origin=web.url,  # type: ignore[arg-type]
            additional_headers={"Cookie": f"sessionid={session}"},
            open_timeout=10,
        ) as socket:
            # The grid: the server finished the connect's database work.
            assert "pbx-status" in str(socket.recv(timeout=10))
    # A backend reports its session when it ends, or within a second while it idles.
    time.sleep(1.5)
    return sessions_opened(services) - before


def sessions_of_a_burst(stack: Stack, services: Services, username: str, pool_size: str) -> int:
    """A web process with ``DATABASE_POOL_SIZE=pool_size`` and a user with a tenant of his own;
    the sessions PostgreSQL opened for his burst."""
    account = unique_account()
    # No worker runs: the tenant is never streamed, its board just shows no extensions.
    spec = {"username": username, "password": PASSWORD, "base_url": "http://127.0.0.1:9"}
    seed(stack, {**spec, "tenants": {account: [f"{account}/u", "p"]}})
    web = stack.web(f"web-{username}", DATABASE_POOL_SIZE=pool_size)
    try:
        return burst(web, services, account, username)
    finally:
        web.process.stop()
        # The database is the session's: other modules' workers must not find this tenant.
        stack.run("-c", FORGET, account, username)


def test_a_pooled_web_process_reuses_its_connections(stack: Stack, services: Services) -> None:
    opened = sessions_of_a_burst(stack, services, "pooled", pool_size="4")
    # The pool opens at most its size, once; not one per page or socket.
    assert opened <= 4, stack.dump()


def test_without_the_pool_every_page_and_socket_connects_anew(
    stack: Stack, services: Services
) -> None:
    opened = sessions_of_a_burst(stack, services, "unpooled", pool_size="0")
    assert opened >= SOCKETS + PAGES, stack.dump()
