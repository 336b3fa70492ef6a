"""The dial field: numbers as people type them, the rights to call them, errors in words."""

import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from ctiboard.calls.models import CallAttempt
from ctiboard.contacts.models import Contact
from ctiboard.tenancy.models import Membership, Tenant
from tests.board.support import login
from tests.conftest import Company


@pytest.fixture(autouse=True)
def no_pbx(monkeypatch: pytest.MonkeyPatch) -> list[CallAttempt]:
    """originate.place without a PBX: the attempt is accepted as it is."""
    placed: list[CallAttempt] = []

    async def place(attempt: CallAttempt, tenant: Tenant) -> CallAttempt:
        placed.append(attempt)
        return attempt

    monkeypatch.setattr("ctiboard.board.views.originate.place", place)
    return placed


def dial(client: Client, company: Company, number: str, *, htmx: bool = True):  # type: ignore[no-untyped-def]
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post(
        reverse("dial", args=[company.tenant.account]), {"number": number}, headers=headers
    )


@pytest.mark.parametrize(
    ("typed", "callee", "shown"),
    [
        ("+49 89 1234-567", "49891234567", "089 1234567"),
        ("0049 89 1234567", "49891234567", "089 1234567"),
        ("089 1234567", "49891234567", "089 1234567"),
        ("(0)30 / 12 34 56", "4930123456", "030 123456"),
        ("0044 20 7946 0018", "442079460018", "+44 20 7946 0018"),
    ],
)
def test_external_numbers_go_out_normalised_in_the_global_context(
    client: Client, owner: User, company: Company, typed: str, callee: str, shown: str
) -> None:
    response = dial(login(client, owner), company, typed)
    assert response.status_code == 200
    attempt = CallAttempt.objects.get()
    assert (attempt.caller, attempt.callee, attempt.callee_context) == ("100", callee, "global")
    html = response.content.decode()
    # A fresh, empty dial field, and the call's progress where all progress goes.
    assert '<form id="dial"' in html and 'value=""' in html
    assert 'id="call-status"' in html and 'hx-swap-oob="true"' in html
    # Shown as the tenant's country writes it: nationally at home, else internationally.
    assert f"Call to {shown}" in html


def test_the_tenants_country_code_makes_national_numbers(
    client: Client, owner: User, company: Company
) -> None:
    company.tenant.country_code = "43"
    company.tenant.save()
    dial(login(client, owner), company, "01 234 5678")
    assert CallAttempt.objects.get().callee == "4312345678"


def test_an_italian_tenant_dials_with_the_zero_kept(
    client: Client, owner: User, company: Company
) -> None:
    company.tenant.country_code = "39"
    company.tenant.save()
    response = dial(login(client, owner), company, "06 6982 1234")
    assert CallAttempt.objects.get().callee == "390669821234"
    assert "Call to 06 6982 1234" in response.content.decode()


def test_an_extension_number_calls_the_extension(
    client: Client, member: User, company: Company
) -> None:
    response = dial(login(client, member), company, " 102 ")
    assert response.status_code == 200
    attempt = CallAttempt.objects.get()
    assert (attempt.caller, attempt.callee, attempt.callee_context) == (
        "101",
        "102",
        company.tenant.account,
    )


def test_an_invisible_extension_is_not_told_apart_from_a_missing_one(
    client: Client, member: User, company: Company
) -> None:
    login(client, member)
    hidden = dial(client, company, "104")  # exists, but member may not see it
    missing = dial(client, company, "999")
    assert hidden.status_code == missing.status_code == 400

    def without_token(html: str) -> str:
        return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)

    assert without_token(hidden.content.decode()).replace("104", "999") == without_token(
        missing.content.decode()
    )
    assert "There is no extension 104 on your board" in hidden.content.decode()
    assert "Person 4" not in hidden.content.decode()
    assert not CallAttempt.objects.exists()


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("", "Enter a number to call."),
        ("call me maybe", "may contain only digits"),
        ("+49 89", "too short"),
        ("+0 89 1234567", "country code does not exist"),
    ],
)
def test_invalid_input_gets_a_message_next_to_the_field(
    client: Client, owner: User, company: Company, typed: str, message: str
) -> None:
    response = dial(login(client, owner), company, typed)
    html = response.content.decode()
    assert response.status_code == 400
    assert html.lstrip().startswith('<form id="dial"')
    assert 'aria-invalid="true"' in html and 'id="dial-error"' in html
    assert message in html
    # What the user typed stays in the field to be corrected (escaped).
    assert 'value="call me maybe"' in html or typed != "call me maybe"
    assert not CallAttempt.objects.exists()


def test_without_javascript_the_board_shows_the_error(
    client: Client, owner: User, company: Company
) -> None:
    response = dial(login(client, owner), company, "<b>x</b>", htmx=False)
    html = response.content.decode()
    assert response.status_code == 400 and "<html" in html
    assert "may contain only digits" in html and 'value="&lt;b&gt;x&lt;/b&gt;"' in html
    ok = dial(client, company, "+49 30 123456", htmx=False)
    assert ok.status_code == 302 and ok["Location"] == reverse(
        "board", args=[company.tenant.account]
    )


def test_external_numbers_need_the_right(client: Client, owner: User, company: Company) -> None:
    Membership.objects.filter(user=owner).update(can_call_external=False)
    login(client, owner)
    response = dial(client, company, "+49 30 123456")
    assert response.status_code == 403
    assert "not allowed to call external numbers" in response.content.decode()
    # Colleagues still work, and the field says what it takes.
    assert dial(client, company, "103").status_code == 200
    assert "Call an extension" in response.content.decode()


def test_no_own_extension_no_dialling(client: Client, owner: User, company: Company) -> None:
    Membership.objects.filter(user=owner).update(own_extension=None)
    login(client, owner)
    page = client.get(reverse("board", args=[company.tenant.account])).content.decode()
    assert 'id="dial"' not in page
    response = dial(client, company, "+49 30 123456")
    assert response.status_code == 403
    assert not CallAttempt.objects.exists()


def test_own_extension_is_refused(client: Client, owner: User, company: Company) -> None:
    response = dial(login(client, owner), company, "100")
    assert response.status_code == 400 and "your own extension" in response.content.decode()


def test_the_phonebook_names_the_number(client: Client, owner: User, company: Company) -> None:
    Contact.objects.create(tenant=company.tenant, name="Anna Kundin", number="030 123456")
    response = dial(login(client, owner), company, "+49 30 123456")
    assert "Call to Anna Kundin (030 123456)" in response.content.decode()


def test_anonymous_is_sent_to_login(client: Client, company: Company) -> None:
    response = dial(client, company, "+49 30 123456")
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_stranger_gets_404(client: Client, stranger: User, company: Company) -> None:
    response = dial(login(client, stranger), company, "+49 30 123456")
    assert response.status_code == 404
    assert not CallAttempt.objects.exists()


def test_get_is_not_allowed(client: Client, owner: User, company: Company) -> None:
    login(client, owner)
    assert client.get(reverse("dial", args=[company.tenant.account])).status_code == 405


def test_csrf_is_enforced(owner: User, company: Company) -> None:
    client = Client(enforce_csrf_checks=True)
    login(client, owner)
    assert dial(client, company, "+49 30 123456").status_code == 403
    assert not CallAttempt.objects.exists()
