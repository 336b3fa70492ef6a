"""Company sign-in through the test OpenID provider, end to end through the Django test client."""

from typing import Any

import httpx
import pytest
from django.contrib.auth import BACKEND_SESSION_KEY, SESSION_KEY, authenticate
from django.contrib.auth.models import User
from django.test import Client, RequestFactory
from mozilla_django_oidc.utils import generate_code_challenge

from ctiboard.tenancy.models import AuditEntry, Extension, Membership
from tests.conftest import PASSWORD, Company, make_user
from tests.support.oidc_provider import OpenIDProvider, s256

from .conftest import COMPANY_SIGN_IN, sign_in

pytestmark = pytest.mark.django_db


def signed_in_user(client: Client) -> User | None:
    user_id = client.session.get(SESSION_KEY)
    return User.objects.get(pk=user_id) if user_id else None


def refused(response: Any, client: Client) -> bool:
    """Back on the login page with the failure message, nobody signed in."""
    if response.status_code != 302 or response["Location"] != "/login/":
        return False
    page = client.get("/login/").content.decode()
    return "Sign-in with your company account failed" in page and signed_in_user(client) is None


def test_the_login_page_offers_company_sign_in_beside_the_password(client, oidc) -> None:
    page = client.get("/login/?next=/t/K1/").content.decode()
    assert 'name="password"' in page
    assert "Sign in with Test ID" in page
    assert 'href="/account/sign-in/?next=/t/K1/"' in page


def test_without_configuration_there_is_no_company_sign_in(client, db) -> None:
    page = client.get("/login/").content.decode()
    assert 'name="password"' in page
    assert "Sign in with" not in page
    assert client.get("/account/sign-in/").status_code == 404


def test_sign_in_creates_the_user_by_his_verified_email(client, oidc) -> None:
    oidc.sign_in_as("Carol.Smith@Example.COM", given_name="Carol", family_name="Smith")
    response = sign_in(client, "/account/sign-in/?next=/history-of-nothing/")
    assert response.status_code == 302
    assert response["Location"] == "/history-of-nothing/"
    user = signed_in_user(client)
    assert user is not None
    assert user.email == "Carol.Smith@example.com"  # Django lowers the domain only
    assert user.username == "carol.smith@example.com"
    assert (user.first_name, user.last_name) == ("Carol", "Smith")
    assert not user.has_usable_password()
    assert client.session[BACKEND_SESSION_KEY] == COMPANY_SIGN_IN
    # The authorization request carried a PKCE challenge (S256) and a nonce.
    request = oidc.authorize_requests[-1]
    assert request["code_challenge_method"] == "S256"
    assert request["code_challenge"] and request["nonce"]
    # No tenant configured: signed in, but no board for him yet.
    assert "No board for you yet" in client.get("/").content.decode()


def test_a_second_sign_in_matches_the_same_user_whatever_the_case(client, oidc) -> None:
    oidc.sign_in_as("carol@example.com")
    sign_in(client)
    first = signed_in_user(client)
    client.post("/logout/")
    assert signed_in_user(client) is None
    oidc.sign_in_as("CAROL@EXAMPLE.COM")
    sign_in(client)
    assert signed_in_user(client) == first
    assert User.objects.count() == 1


def test_an_existing_user_is_matched_by_email_never_by_username(client, oidc) -> None:
    erin = User.objects.create_user("erin", email="Erin@Example.com", password=PASSWORD)
    squatter = User.objects.create_user("dave@example.com", email="", password=PASSWORD)
    oidc.sign_in_as("erin@example.com")
    sign_in(client)
    assert signed_in_user(client) == erin
    client.post("/logout/")
    oidc.sign_in_as("dave@example.com")
    sign_in(client)
    dave = signed_in_user(client)
    assert dave is not None and dave != squatter
    assert dave.username == "dave@example.com-2"
    assert dave.email == "dave@example.com"


def test_the_tenant_claim_makes_him_a_member_who_sees_nothing_yet(
    client, oidc, settings, company: Company
) -> None:
    settings.CTIBOARD_OIDC_TENANT_CLAIM = "k_account"
    oidc.sign_in_as("frank@elsewhere.example", k_account=company.tenant.account.lower())
    sign_in(client)
    user = signed_in_user(client)
    membership = Membership.objects.get(user=user)
    assert membership.tenant == company.tenant
    assert not membership.sees_all_extensions
    assert not membership.extensions.exists() and not membership.groups.exists()
    assert membership.own_extension is None
    assert not Extension.objects.visible_to(user).exists()
    assert AuditEntry.objects.filter(tenant=company.tenant, subject=user.username).exists()
    # His board opens, empty, until a tenant admin grants him extensions.
    response = client.get("/", follow=True)
    assert response.redirect_chain[-1][0] == f"/t/{company.tenant.account}/"
    assert response.status_code == 200


def test_the_email_domain_places_him_without_a_claim(
    client, oidc, settings, company: Company, other_company: Company
) -> None:
    settings.CTIBOARD_OIDC_TENANT_CLAIM = "k_account"
    settings.CTIBOARD_OIDC_TENANT_DOMAINS = {"example.org": company.tenant.account}
    oidc.sign_in_as("grace@Example.ORG")
    sign_in(client)
    assert Membership.objects.get(user=signed_in_user(client)).tenant == company.tenant
    # A second sign-in leaves the membership (and what an admin granted) as it is.
    membership = Membership.objects.get(user=signed_in_user(client))
    membership.extensions.add(company.extensions[0])
    client.post("/logout/")
    sign_in(client)
    assert list(Membership.objects.get(pk=membership.pk).extensions.all()) == [
        company.extensions[0]
    ]
    assert Membership.objects.count() == 1


def test_a_claim_naming_no_tenant_places_nobody(client, oidc, settings, company: Company) -> None:
    settings.CTIBOARD_OIDC_TENANT_CLAIM = "k_account"
    settings.CTIBOARD_OIDC_TENANT_DOMAINS = {"example.org": company.tenant.account}
    oidc.sign_in_as("heidi@example.org", k_account="K999999")
    sign_in(client)
    assert signed_in_user(client) is not None
    assert not Membership.objects.exists()


@pytest.mark.parametrize("verified", [False, "false", None])
def test_an_unverified_email_is_refused(client, oidc, verified: Any) -> None:
    erin = User.objects.create_user("erin", email="erin@example.com", password=PASSWORD)
    oidc.sign_in_as("erin@example.com", verified=verified)
    assert refused(sign_in(client), client)
    assert User.objects.get() == erin  # neither matched nor created


def test_a_wrong_pkce_verifier_is_refused_by_the_provider(client, oidc) -> None:
    oidc.sign_in_as("ivan@example.com")
    response = client.get("/account/sign-in/")
    back = httpx.get(response["Location"], follow_redirects=False).headers["location"]
    # Someone who caught the code cannot redeem it without the verifier the session keeps.
    session = client.session
    for entry in session["oidc_states"].values():
        entry["code_verifier"] = "x" * 64
    session.save()
    assert refused(client.get(back.removeprefix("http://testserver")), client)
    assert [(r.status, r.error) for r in oidc.token_requests] == [(400, "invalid_grant")]
    assert not User.objects.exists()


def test_a_code_outside_the_callback_starts_no_token_exchange(client, oidc) -> None:
    oidc.sign_in_as("judy@example.com")
    back = httpx.get(client.get("/account/sign-in/")["Location"]).headers["location"]
    # A password form posted to a URL carrying a fresh code and state: only the callback,
    # with the session's PKCE verifier, may redeem it.
    request = RequestFactory().post(f"/login/?{back.partition('?')[2]}")
    request.session = client.session
    assert authenticate(request, username="judy", password="x") is None
    assert oidc.token_requests == []


def test_a_token_for_another_client_is_refused(client, oidc) -> None:
    oidc.sign_in_as("mallory@example.com")
    oidc.audience = "some-other-app"
    assert refused(sign_in(client), client)
    assert [r.status for r in oidc.token_requests] == [200]
    assert not User.objects.exists()


def test_a_discovery_document_of_another_issuer_is_refused(client, oidc, settings) -> None:
    settings.CTIBOARD_OIDC_ISSUER = oidc.issuer + "/realms/other"
    response = client.get("/account/sign-in/")
    assert response.status_code == 302 and response["Location"] == "/login/"
    assert oidc.authorize_requests == []


def test_explicit_endpoints_replace_discovery(client, oidc, settings) -> None:
    settings.CTIBOARD_OIDC_ISSUER = None
    settings.CTIBOARD_OIDC_ENDPOINTS = {
        "authorization_endpoint": f"{oidc.issuer}/authorize",
        "token_endpoint": f"{oidc.issuer}/token",
        "userinfo_endpoint": None,
        "jwks_uri": f"{oidc.issuer}/jwks",
    }
    oidc.sign_in_as("kim@example.com")
    sign_in(client)
    assert signed_in_user(client).email == "kim@example.com"  # type: ignore[union-attr]


def test_password_login_off_shows_only_company_sign_in_and_refuses_the_form(
    client, oidc, settings
) -> None:
    settings.CTIBOARD_PASSWORD_LOGIN = False
    settings.AUTHENTICATION_BACKENDS = [COMPANY_SIGN_IN]
    make_user("alice")
    page = client.get("/login/").content.decode()
    assert 'name="password"' not in page
    assert "Sign in with Test ID" in page
    response = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 403
    assert signed_in_user(client) is None
    # The admin's login is the same page, under the same rule.
    response = client.get("/admin/login/?next=/admin/pbx/tenant/")
    assert response["Location"] == "/login/?next=%2Fadmin%2Fpbx%2Ftenant%2F"
    response = client.post("/admin/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 405
    assert signed_in_user(client) is None
    # Nothing else accepts a password either.
    assert authenticate(username="alice", password=PASSWORD) is None
    # The company sign-in still works.
    oidc.sign_in_as("alice@example.com")
    sign_in(client)
    assert signed_in_user(client) is not None


def test_the_providers_s256_is_the_clients() -> None:
    # Written apart from the library's; the sign-ins above pass only if both agree.
    verifier = "a" * 43 + "-._~9"
    assert s256(verifier) == generate_code_challenge(verifier, "S256")
    assert s256(verifier) != generate_code_challenge(verifier + "x", "S256")


def test_provider_is_a_real_server(idp: OpenIDProvider) -> None:
    document = httpx.get(f"{idp.issuer}/.well-known/openid-configuration").json()
    assert document["issuer"] == idp.issuer
    assert httpx.get(document["jwks_uri"]).json()["keys"][0]["kty"] == "RSA"


def test_in_german(client, oidc) -> None:
    page = client.get("/login/", headers={"accept-language": "de"}).content.decode()
    assert "Mit Test ID anmelden" in page
