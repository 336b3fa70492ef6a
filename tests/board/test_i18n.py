"""German and English: the browser's language by default, a switcher to change it."""

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from ctiboard.calls.models import CallAttempt, CallStatus
from ctiboard.tenancy.models import Extension
from tests.board.support import login
from tests.conftest import Company


def test_the_browser_language_decides(client: Client, owner: User, company: Company) -> None:
    login(client, owner)
    url = reverse("board", args=[company.tenant.account])
    german = client.get(url, headers={"accept-language": "de-DE,de;q=0.9"}).content.decode()
    assert '<html lang="de">' in german
    for text in ("Suche", "Frei", "Verfügbar", "Nummer anrufen", "Leitung", "Präsenz"):
        assert text in german
    english = client.get(url, headers={"accept-language": "en-GB"}).content.decode()
    assert '<html lang="en">' in english and "Search" in english and "Free" in english


def test_the_switcher_sets_the_language(client: Client, owner: User, company: Company) -> None:
    login(client, owner)
    url = reverse("board", args=[company.tenant.account])
    page = client.get(url).content.decode()
    assert f'action="{reverse("set_language")}"' in page and 'value="de"' in page
    response = client.post(reverse("set_language"), {"language": "de", "next": url})
    assert response.status_code == 302 and response["Location"] == url
    assert "Suche" in client.get(url, headers={"accept-language": "en"}).content.decode()


def test_the_login_page_is_translated_too(client: Client, db: None) -> None:
    html = client.get(reverse("login"), headers={"accept-language": "de"}).content.decode()
    assert "Bei ctiboard anmelden" in html and "Benutzername" in html


@pytest.mark.parametrize(
    ("typed", "message"),
    [("abc", "darf nur Ziffern"), ("+49 89", "zu kurz"), ("999", "keine Nebenstelle 999")],
)
def test_errors_in_german(
    client: Client, owner: User, company: Company, typed: str, message: str
) -> None:
    login(client, owner)
    response = client.post(
        reverse("dial", args=[company.tenant.account]),
        {"number": typed},
        headers={"HX-Request": "true", "accept-language": "de"},
    )
    assert response.status_code == 400 and message in response.content.decode()


def test_compiled_translations_are_in_the_repository() -> None:
    from pathlib import Path

    from django.conf import settings

    locale = Path(settings.LOCALE_PATHS[0]) / "de" / "LC_MESSAGES"
    assert (locale / "django.po").exists() and (locale / "django.mo").exists()


def test_call_results_and_disabled_call_buttons_speak_german(
    client: Client, owner: User, company: Company
) -> None:
    Extension.objects.filter(pk=company.extensions[4].pk).update(line="offline")
    CallAttempt.objects.create(
        tenant=company.tenant,
        user=owner,
        caller="100",
        callee="4930123456",
        callee_context="global",
        status=CallStatus.ENDED,
        error="busy",
        reached=CallStatus.CALLER_DIAL,
    )
    login(client, owner)
    url = reverse("board", args=[company.tenant.account])
    german = client.get(url, headers={"accept-language": "de"}).content.decode()
    assert "Anruf an 030 123456" in german
    assert "Ihr Telefon ist besetzt: 030 123456 wurde nicht angerufen." in german
    assert "104 ist offline." in german and "Das ist Ihr eigenes Telefon." in german
    assert 'aria-label="Schließen"' in german
