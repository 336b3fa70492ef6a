"""History, CSV and analytics for every kind of user: records only of extensions whose call
details the user may see (``Extension.objects.visible_to(user, details=True)``)."""

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.test import AsyncClient, Client
from django.urls import reverse

from ctiboard.lib.phonenumbers import display
from ctiboard.tenancy.models import Membership
from tests.conftest import Company, isolation_personas, make_user
from tests.history.support import csv_of, make_record

PERSONAS = ["anonymous", "stranger", "outsider", "line_only", "member", "full"]
# Partner numbers of the records on 100 … 105: one per extension.
PARTNERS = {str(100 + n): f"49301000{100 + n}" for n in range(6)}
EXPECTED = {
    "anonymous": (302, set()),
    "stranger": (404, set()),
    "outsider": (200, set()),
    "line_only": (200, set()),
    "member": (200, {"101", "102"}),
    "full": (200, set(PARTNERS)),
}


@pytest.fixture
def people(company: Company, other_company: Company) -> dict[str, User | None]:
    for number, partner in PARTNERS.items():
        make_record(company, number, f"call-{number}", partner=partner)
        make_record(other_company, number, f"other-{number}", partner="4989" + partner[4:])
    people = isolation_personas(company, other_company)
    member = make_user("member")  # 101 and 102, with details
    membership = Membership.objects.create(
        user=member, tenant=company.tenant, own_extension=company.extensions[1]
    )
    membership.extensions.set(company.extensions[1:3])
    return {**people, "member": member}


def client_for(user: User | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def _forms(digits: str) -> tuple[str, str]:
    """A partner number as the CSV has it and as the page writes it (the German tenant's)."""
    return digits, display(digits, external=True, country_code="49")


def seen(content: str) -> set[str]:
    """The extensions whose records show (by their partners' numbers), of either company."""
    shown = {
        number
        for number, partner in PARTNERS.items()
        if any(form in content for form in _forms(partner))
    }
    assert not any(form in content for p in PARTNERS.values() for form in _forms("4989" + p[4:])), (
        "another tenant's"
    )
    return shown


def check(persona: str, response: object, content: str) -> None:
    status, visible = EXPECTED[persona]
    assert response.status_code == status  # type: ignore[attr-defined]
    if status == 302:
        assert response["Location"].startswith(reverse("login"))  # type: ignore[index]
    assert seen(content) == visible


@pytest.mark.django_db
@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("htmx", [False, True])
def test_history(
    persona: str, htmx: bool, people: dict[str, User | None], company: Company
) -> None:
    headers = {"HX-Request": "true"} if htmx else {}
    response = client_for(people[persona]).get(
        reverse("history", args=[company.tenant.account]), headers=headers
    )
    check(persona, response, response.content.decode())


@pytest.mark.django_db
@pytest.mark.parametrize("persona", PERSONAS)
def test_history_search_finds_nothing_out_of_sight(
    persona: str, people: dict[str, User | None], company: Company
) -> None:
    """Searching for the partner of an extension out of sight finds nothing either."""
    response = client_for(people[persona]).get(
        reverse("history", args=[company.tenant.account]), {"q": PARTNERS["104"]}
    )
    status, visible = EXPECTED[persona]
    assert response.status_code == status
    found = 'data-uuid="call-104"' in response.content.decode()  # (the form shows the query)
    assert found == ("104" in visible)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("persona", PERSONAS)
async def test_csv(persona: str, people: dict[str, User | None], company: Company) -> None:
    client = AsyncClient()
    user = people[persona]
    if user is not None:
        await client.aforce_login(user)
    response = await client.get(reverse("history_csv", args=[company.tenant.account]))
    content = ""
    if response.status_code == 200:
        content = "\n".join(",".join(row) for row in await csv_of(response))
    else:
        content = response.content.decode()
    await sync_to_async(check)(persona, response, content)


@pytest.mark.django_db
@pytest.mark.parametrize("persona", PERSONAS)
def test_analytics(persona: str, people: dict[str, User | None], company: Company) -> None:
    response = client_for(people[persona]).get(reverse("analytics", args=[company.tenant.account]))
    status, visible = EXPECTED[persona]
    assert response.status_code == status
    if status != 200:
        return
    html = response.content.decode()
    shown = {e.number for e in company.extensions if f"{e.number} {e.name}" in html}
    assert shown == visible
    assert response.context["total"].inbound == len(visible)
    heat = response.context["heat"]
    assert sum(cell.count for row in heat.rows for cell in row.cells) == len(visible)
