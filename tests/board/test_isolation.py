"""Every view, socket and action, for every kind of user: nobody learns what he may not see."""

import re

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from ctiboard.calls.models import CallAttempt
from ctiboard.tenancy.models import Membership
from tests.board.support import apply, connect, state, tile_ids
from tests.conftest import PASSWORD, Company, isolation_personas, make_user

PERSONAS = ["anonymous", "stranger", "outsider", "line_only", "full"]


@pytest.fixture
def people(company: Company, other_company: Company) -> dict[str, User | None]:
    return isolation_personas(company, other_company)


def client_for(user: User | None) -> Client:
    client = Client()
    if user is not None:
        assert client.login(username=user.username, password=PASSWORD)
    return client


def names_in(html: str, company: Company) -> set[str]:
    return {e.name for e in company.extensions if e.name in html}


EXPECTED_BOARD = {
    "anonymous": (302, 0),
    "stranger": (404, 0),
    "outsider": (200, 0),
    "line_only": (200, 6),
    "full": (200, 6),
}


@pytest.mark.parametrize("persona", PERSONAS)
def test_board_page(persona: str, people: dict[str, User | None], company: Company) -> None:
    response = client_for(people[persona]).get(reverse("board", args=[company.tenant.account]))
    html = response.content.decode()
    status, tiles = EXPECTED_BOARD[persona]
    assert response.status_code == status
    assert len(re.findall(r"<article ", html)) == tiles
    assert len(names_in(html, company)) == tiles
    call_buttons = html.count('data-form="call-form"')
    assert call_buttons == (5 if persona == "full" else 0)


@pytest.mark.parametrize("persona", PERSONAS)
def test_board_fragment(persona: str, people: dict[str, User | None], company: Company) -> None:
    response = client_for(people[persona]).get(
        reverse("board", args=[company.tenant.account]), headers={"HX-Request": "true"}
    )
    status, tiles = EXPECTED_BOARD[persona]
    assert response.status_code == status
    assert len(names_in(response.content.decode(), company)) == tiles


@pytest.mark.parametrize("persona", PERSONAS)
def test_home_lists_only_own_tenants(
    persona: str, people: dict[str, User | None], company: Company
) -> None:
    response = client_for(people[persona]).get(reverse("home"), follow=True)
    html = response.content.decode()
    if persona in ("anonymous", "stranger"):
        assert company.tenant.account not in html and company.tenant.name not in html


EXPECTED_CALL = {"anonymous": 302, "stranger": 404, "outsider": 404, "line_only": 403, "full": 200}


@pytest.mark.parametrize("persona", PERSONAS)
def test_click_to_call(persona: str, people: dict[str, User | None], company: Company) -> None:
    target = company.extensions[3]
    response = client_for(people[persona]).post(
        reverse("call", args=[company.tenant.account]),
        {"extension": target.pk},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == EXPECTED_CALL[persona]
    attempts = CallAttempt.objects.filter(callee=target.number)
    # Only the full right reaches the PBX (unreachable here: the attempt fails, in words).
    assert attempts.count() == (1 if persona == "full" else 0)
    if persona != "full":
        assert target.name not in response.content.decode()


@pytest.mark.parametrize("persona", PERSONAS)
def test_cancel_someone_elses_call(
    persona: str, people: dict[str, User | None], company: Company
) -> None:
    owner_of_call = make_user("caller")
    attempt = CallAttempt.objects.create(
        tenant=company.tenant,
        user=owner_of_call,
        caller="100",
        callee="103",
        callee_context=company.tenant.account,
        uuid="715a1333-0174-40ea-8b38-67e289069476",
        status="ring",
    )
    response = client_for(people[persona]).post(
        reverse("cancel_call", args=[company.tenant.account, attempt.pk])
    )
    assert response.status_code == (302 if persona == "anonymous" else 404)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("persona", PERSONAS)
async def test_socket(persona: str, people: dict[str, User | None], company: Company) -> None:
    communicator = await connect(people[persona], company.tenant.account)
    connected, _ = await communicator.connect()
    if persona in ("anonymous", "stranger"):
        assert not connected
        return
    assert connected
    grid = await communicator.receive_from()
    visible = EXPECTED_BOARD[persona][1]
    assert len(tile_ids(grid)) == visible
    await apply(company, state("103", "ringing"))
    if visible:
        pushed = await communicator.receive_from()
        assert tile_ids(pushed) == {f"ext-{company.extensions[3].pk}"}
        assert ('data-form="call-form"' in pushed) == (persona == "full")
    else:
        assert await communicator.receive_nothing(timeout=0.3)
    await communicator.disconnect()


def test_group_grants_visibility(company: Company) -> None:
    from ctiboard.tenancy.models import Extension, ExtensionGroup

    user = make_user("grouped")
    membership = Membership.objects.create(user=user, tenant=company.tenant)
    group = ExtensionGroup.objects.create(tenant=company.tenant, name="Sales")
    group.extensions.set(company.extensions[3:5])
    membership.groups.add(group)
    assert sorted(Extension.objects.visible_to(user).values_list("number", flat=True)) == [
        "103",
        "104",
    ]
    assert not Extension.objects.visible_to(user, details=False).filter(number="100").exists()


def test_details_right_narrows_the_rule(people: dict[str, User | None], company: Company) -> None:
    from ctiboard.tenancy.models import Extension

    assert Extension.objects.visible_to(people["line_only"]).count() == 6
    assert Extension.objects.visible_to(people["line_only"], details=True).count() == 0
    assert Extension.objects.visible_to(people["full"], details=True).count() == 6


@pytest.mark.django_db(transaction=True)
async def test_call_rate_limit(people: dict[str, User | None], company: Company) -> None:
    from django.test import AsyncClient

    full = people["full"]
    client = AsyncClient()
    await client.aforce_login(full)
    statuses = []
    for _ in range(12):
        response = await client.post(
            reverse("call", args=[company.tenant.account]),
            {"extension": company.extensions[2].pk},
            headers={"HX-Request": "true"},
        )
        statuses.append(response.status_code)
    assert statuses[:10] == [200] * 10 and statuses[10:] == [429, 429]
    assert b"Too many calls" in response.content
    assert await sync_to_async(CallAttempt.objects.count)() == 10
