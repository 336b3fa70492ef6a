"""A test OpenID provider on 127.0.0.1, and ctiboard's settings pointed at it."""

from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from django.test import Client

from ctiboard.accounts import provider as provider_config
from tests.support.oidc_provider import CLIENT_ID, CLIENT_SECRET, OpenIDProvider

COMPANY_SIGN_IN = "ctiboard.accounts.backend.CompanySignIn"


@pytest.fixture(scope="module")
def _running_provider() -> Iterator[OpenIDProvider]:
    provider = OpenIDProvider().start()
    yield provider
    provider.stop()


@pytest.fixture
def idp(_running_provider: OpenIDProvider) -> OpenIDProvider:
    """The provider, nobody signed in there yet, its logs empty."""
    _running_provider.user = {}
    _running_provider.audience = CLIENT_ID
    _running_provider.authorize_requests.clear()
    _running_provider.token_requests.clear()
    return _running_provider


@pytest.fixture
def oidc(settings, idp: OpenIDProvider) -> Iterator[OpenIDProvider]:  # type: ignore[no-untyped-def]
    """Company sign-in configured (discovery from the issuer), next to password login."""
    settings.CTIBOARD_OIDC = True
    settings.CTIBOARD_OIDC_ISSUER = idp.issuer
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
    settings.CTIBOARD_OIDC_PROVIDER_NAME = "Test ID"
    settings.AUTHENTICATION_BACKENDS = [
        "django.contrib.auth.backends.ModelBackend",
        COMPANY_SIGN_IN,
    ]
    provider_config.forget()
    yield idp
    provider_config.forget()


def sign_in(client: Client, start: str = "/account/sign-in/") -> object:
    """Click "Sign in with …": to the provider over real HTTP, and back into Django."""
    response = client.get(start)
    assert response.status_code == 302, response
    to_provider = response["Location"]
    at_provider = httpx.get(to_provider, follow_redirects=False)
    assert at_provider.status_code == 302, at_provider
    back = urlsplit(at_provider.headers["location"])
    assert back.netloc == "testserver"
    return client.get(f"{back.path}?{back.query}")
