"""Regressions found in review: revoked rights, re-pointed credentials, returning extensions."""

import http.server
import json
import threading

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from ctiboard.tenancy.models import Extension, ExtensionGroup, Membership
from tests.board.support import apply, connect, state, tile_ids
from tests.conftest import PASSWORD, Company, make_tenant_admin, make_user


def _logged_in(user: User) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


@pytest.mark.django_db(transaction=True)
async def test_bulk_deleted_group_stops_pushes(company: Company) -> None:
    def setup() -> tuple[User, User, ExtensionGroup]:
        viewer = make_user("viewer")
        m = Membership.objects.create(user=viewer, tenant=company.tenant, sees_call_details=True)
        group = ExtensionGroup.objects.create(tenant=company.tenant, name="Sales")
        group.extensions.set(company.extensions[4:])
        m.groups.add(group)
        return viewer, make_tenant_admin(company), group

    viewer, admin_user, group = await sync_to_async(setup)()
    socket = await connect(viewer, company.tenant.account)
    assert (await socket.connect())[0]
    first = await socket.receive_from()
    assert f"ext-{company.extensions[4].pk}" in tile_ids(first)

    def bulk_delete() -> None:
        client = _logged_in(admin_user)
        r = client.post(
            reverse("admin:pbx_extensiongroup_changelist"),
            {"action": "delete_selected", "_selected_action": [group.pk], "post": "yes"},
        )
        assert r.status_code == 302
        assert not ExtensionGroup.objects.filter(pk=group.pk).exists()
        # The rule itself agrees: nothing visible any more.
        assert not Extension.objects.visible_to(viewer).exists()

    await sync_to_async(bulk_delete)()
    # Either a resync without the tile, or at least no push of the now-invisible extension.
    await apply(company, state("104", "ringing"))
    received = []
    while not await socket.receive_nothing(timeout=0.5):
        received.append(await socket.receive_from())
    leaked = [m for m in received if f'id="ext-{company.extensions[4].pk}"' in m]
    await socket.disconnect()
    assert not leaked, f"revoked extension still pushed: {leaked[-1][:200]}"


class _Capture(http.server.BaseHTTPRequestHandler):
    seen: list[tuple[str, dict[str, str]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        _Capture.seen.append((self.path, json.loads(body)))
        self.send_response(401)
        self.send_header("content-type", "application/json")
        payload = b'{"error": "internal-service-said-hello"}'
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.django_db
def test_tenant_admin_cannot_send_the_stored_password_elsewhere(company: Company) -> None:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Capture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    admin_user = make_tenant_admin(company)
    client = _logged_in(admin_user)
    tenant = company.tenant
    url = reverse("admin:pbx_tenant_change", args=[tenant.pk])
    r = client.post(
        url,
        {
            "name": tenant.name,
            "account": tenant.account,
            "api_base_url": f"http://127.0.0.1:{server.server_port}/v1",
            "api_username": tenant.api_username,
            "api_password": "",  # keep the stored one
            "enabled": "on",
            "country_code": "49",
            "crm_url_template": "",
            "history_days": "90",
        },
    )
    assert r.status_code == 302, r.content[:2000]
    r = client.post(
        reverse("admin:pbx_tenant_changelist"),
        {"action": "test_connection", "_selected_action": [tenant.pk]},
        follow=True,
    )
    server.shutdown()
    assert not any(body.get("password") == "api-secret" for _, body in _Capture.seen), (
        "the stored API password was sent to the tenant admin's URL"
    )


@pytest.mark.django_db(transaction=True)
async def test_reactivated_extension_reappears(member: User, company: Company) -> None:
    from ctiboard.cti.events import ExtensionData
    from ctiboard.ingest import writer

    ext = company.extensions[2]  # visible to member

    def sync(numbers: set[str]) -> None:
        st = writer.load_state(company.tenant.pk)
        writer.sync_extensions(
            st,
            [
                ExtensionData(number=e.number, name=e.name, uuid="")
                for e in company.extensions
                if e.number in numbers
            ],
        )

    all_numbers = {e.number for e in company.extensions}
    await sync_to_async(sync)(all_numbers - {ext.number})  # 102 leaves the PBX
    socket = await connect(member, company.tenant.account)
    assert (await socket.connect())[0]
    first = await socket.receive_from()
    assert f"ext-{ext.pk}" not in tile_ids(first)

    await sync_to_async(sync)(all_numbers)  # 102 is back
    received = []
    while not await socket.receive_nothing(timeout=0.5):
        received.append(await socket.receive_from())
    await socket.disconnect()
    assert any(f'id="ext-{ext.pk}"' in m for m in received), "tile did not come back"


@pytest.mark.django_db
def test_superuser_must_retype_the_password_to_repoint_a_tenant(company: Company) -> None:
    root = User.objects.create_superuser("root", password=PASSWORD)
    tenant = company.tenant
    response = _logged_in(root).post(
        reverse("admin:pbx_tenant_change", args=[tenant.pk]),
        {
            "name": tenant.name,
            "account": tenant.account,
            "api_base_url": "https://elsewhere.example/v1",
            "api_username": tenant.api_username,
            "api_password": "",
            "enabled": "on",
            "country_code": "49",
            "history_days": "90",
        },
    )
    assert response.status_code == 200
    assert b"Enter the API password again" in response.content
    tenant.refresh_from_db()
    assert tenant.api_base_url != "https://elsewhere.example/v1"


@pytest.mark.django_db
def test_readyz_names_tenants_only_to_local_probes(company: Company) -> None:
    local = Client().get("/readyz").json()["checks"]["workers"]
    assert local["unserved"] == [company.tenant.account]
    remote = Client(REMOTE_ADDR="203.0.113.7").get("/readyz")
    assert remote.json() == {"status": "unavailable"}


@pytest.mark.django_db(transaction=True)
async def test_parallel_calls_cannot_beat_the_rate_limit(company: Company) -> None:
    import asyncio

    from django.test import AsyncClient

    from ctiboard.calls.models import CallAttempt

    def full_user() -> User:
        user = make_user("caller")
        Membership.objects.create(
            user=user,
            tenant=company.tenant,
            sees_all_extensions=True,
            own_extension=company.extensions[0],
        )
        return user

    user = await sync_to_async(full_user)()
    client = AsyncClient()
    await client.aforce_login(user)

    async def call() -> int:
        response = await client.post(
            reverse("call", args=[company.tenant.account]),
            {"extension": company.extensions[2].pk},
            headers={"HX-Request": "true"},
        )
        return response.status_code

    statuses = await asyncio.gather(*(call() for _ in range(15)))
    assert statuses.count(200) <= 10
    assert await CallAttempt.objects.acount() <= 10
