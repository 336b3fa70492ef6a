"""The tenant's phonebook: lookup by the number the PBX reports, CSV import, admin scope."""

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from ctiboard.contacts.importing import decode, import_csv
from ctiboard.contacts.models import Contact, lookup
from tests.conftest import PASSWORD, Company


def add(company: Company, name: str, number: str, vip: bool = False) -> Contact:
    return Contact.objects.create(tenant=company.tenant, name=name, number=number, vip=vip)


def test_numbers_are_found_however_they_were_written(company: Company) -> None:
    anna = add(company, "Anna", "+49 (0)30 12 34 56")
    bert = add(company, "Bert", "0049 89 1234567")
    colleague = add(company, "Empfang", "100")
    found = lookup(company.tenant, ["4930123456", "0891234567", "100", "4940111111", ""])
    assert found == {"4930123456": anna, "0891234567": bert, "100": colleague}


def test_lookup_stays_in_the_tenant(company: Company, other_company: Company) -> None:
    add(other_company, "Foreign", "030 123456")
    assert lookup(company.tenant, ["4930123456"]) == {}


def test_a_vip_wins_when_a_number_is_in_the_book_twice(company: Company) -> None:
    add(company, "Zentrale", "030 123456")
    boss = add(company, "Chefin", "+49 30 123456", vip=True)
    assert lookup(company.tenant, ["4930123456"])["4930123456"] == boss


def test_invalid_numbers_are_refused_with_a_reason(company: Company) -> None:
    contact = Contact(tenant=company.tenant, name="X", number="call me")
    with pytest.raises(ValidationError, match="only digits"):
        contact.full_clean()


def test_csv_import_adds_updates_and_reports(company: Company) -> None:
    add(company, "Old Name", "030 123456")
    text = (
        "Name;Telefon;VIP\n"
        "Anna Kundin;+49 30 123456;ja\n"
        "Bert Lieferant;089 1234567;\n"
        ";089 7654321;\n"
        "Carla;no number;\n"
        "Dora;+49 40 111111;maybe\n"
        "\n"
        "Emil;0043 1 2345678;x\n"
    )
    result = import_csv(company.tenant, text)
    assert (result.created, result.updated) == (2, 1)
    assert result.errors == [
        "Line 4: no name.",
        "Line 5: no number: A phone number may contain only digits, spaces, dashes, slashes, "
        "parentheses and a leading +.",
        "Line 6: VIP must be yes or no, not maybe.",
    ]
    anna = Contact.objects.get(number_key="4930123456")
    assert (anna.name, anna.vip) == ("Anna Kundin", True)
    assert Contact.objects.get(number_key="4312345678").vip


def test_csv_import_reads_commas_and_windows_encoding(company: Company) -> None:
    text = decode("name,number\nJürgen Müller,030 999999\n".encode("cp1252"))
    assert import_csv(company.tenant, text).created == 1
    assert Contact.objects.get().name == "Jürgen Müller"
    assert decode("\ufeffname,number\n".encode()) == "name,number\n"


def test_csv_without_the_columns_is_refused(company: Company) -> None:
    result = import_csv(company.tenant, "Vorname,Firma\nAnna,ACME\n")
    assert result.created == 0 and "missing: name, number" in result.errors[0]


def logged_in(user: User) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


def upload(text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile("contacts.csv", text.encode(), content_type="text/csv")


def test_tenant_admin_imports_into_his_tenant_only(
    tenant_admin: User, company: Company, other_company: Company
) -> None:
    client = logged_in(tenant_admin)
    url = reverse("admin:contacts_contact_import")
    page = client.get(url).content.decode()
    assert company.tenant.account in page and other_company.tenant.account not in page
    response = client.post(
        url, {"tenant": other_company.tenant.pk, "file": upload("name,number\nA,030 1234567\n")}
    )
    assert response.status_code == 200 and not Contact.objects.exists()  # not a valid choice
    response = client.post(
        url, {"tenant": company.tenant.pk, "file": upload("name,number\nA,030 1234567\n")}
    )
    assert response.status_code == 302
    assert Contact.objects.get().tenant == company.tenant
    listing = client.get(reverse("admin:contacts_contact_changelist")).content.decode()
    assert "1 contact added, 0 updated." in listing and "Import CSV" in listing


def test_admin_search_finds_numbers_in_any_format(
    tenant_admin: User, company: Company, other_company: Company
) -> None:
    add(company, "Anna", "+49 30 123456")
    add(other_company, "Foreign Anna", "+49 30 123456")
    client = logged_in(tenant_admin)
    response = client.get(reverse("admin:contacts_contact_changelist"), {"q": "030 123456"})
    assert response.context["cl"].result_count == 1
    assert "Foreign" not in response.content.decode()


def test_import_needs_the_admin(client: Client, owner: User, company: Company) -> None:
    url = reverse("admin:contacts_contact_import")
    assert client.get(url).status_code == 302
    assert logged_in(owner).get(url).status_code == 302  # not staff: the admin login
