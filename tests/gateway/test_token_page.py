"""The user's own API tokens page: a secret shown once and stored hashed, revocation, and no
way to another user's or another tenant's tokens."""

import re

from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from ctiboard.gateway.models import ApiToken, find
from tests.board.support import login
from tests.conftest import Company


def test_a_token_is_shown_once_and_revoked_on_the_page(member: User, company: Company) -> None:
    client = login(Client(), member)
    page = reverse("api_tokens", args=[company.tenant.account])
    assert 'href="' + page + '"' in client.get(reverse("board", args=[company.tenant.account])).text
    made = client.post(page, {"name": "CRM", "scope": "call", "expires_in_days": "30"})
    (secret,) = re.findall(r'<code id="token-secret">([^<]+)</code>', made.text)
    token = ApiToken.objects.get(user=member)
    assert (token.name, token.scope, token.expires_at is not None) == ("CRM", "call", True)
    assert secret not in token.secret_hash and find(secret) == token
    assert secret not in client.get(page).text and made["Cache-Control"] == "no-store"

    client.post(reverse("api_token_revoke", args=[company.tenant.account, token.pk]))
    token.refresh_from_db()
    assert token.revoked_at is not None and find(secret) is None


def test_nobody_reaches_another_users_tokens(
    member: User, owner: User, stranger: User, company: Company
) -> None:
    token, _ = ApiToken.issue(user=owner, tenant=company.tenant, name="owner's")
    revoke = reverse("api_token_revoke", args=[company.tenant.account, token.pk])
    assert login(Client(), member).post(revoke).status_code == 404
    assert (
        "owner's"
        not in login(Client(), member)
        .get(reverse("api_tokens", args=[company.tenant.account]))
        .text
    )
    page = reverse("api_tokens", args=[company.tenant.account])
    assert login(Client(), stranger).get(page).status_code == 404
    assert Client().get(page).status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is None
