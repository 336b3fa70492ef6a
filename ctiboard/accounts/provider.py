"""Where the OpenID provider's endpoints are: its discovery document, or the settings."""

import threading
from dataclasses import dataclass

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DISCOVERY_PATH = "/.well-known/openid-configuration"


class ProviderUnavailable(Exception):
    """The discovery document could not be read; the next sign-in tries again."""


@dataclass(frozen=True)
class Provider:
    issuer: str | None
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str | None
    jwks_uri: str


_lock = threading.Lock()
_cached: Provider | None = None


def provider() -> Provider:
    """The configured provider; its discovery document is read once per process."""
    global _cached
    with _lock:
        if _cached is None:
            _cached = _resolve()
        return _cached


def forget() -> None:
    """Read the discovery document again at the next sign-in (tests, a changed provider)."""
    global _cached
    with _lock:
        _cached = None


def _resolve() -> Provider:
    if not settings.CTIBOARD_OIDC:
        raise ImproperlyConfigured("company sign-in is not configured")
    issuer = settings.CTIBOARD_OIDC_ISSUER
    found: dict[str, str | None] = {}
    if issuer:
        found = _discover(issuer)
    explicit = {key: value for key, value in settings.CTIBOARD_OIDC_ENDPOINTS.items() if value}
    found.update(explicit)
    needed = ("authorization_endpoint", "token_endpoint", "jwks_uri")
    missing = [key for key in needed if not found.get(key)]
    if missing:
        raise ProviderUnavailable(f"the provider names no {', '.join(missing)}")
    return Provider(
        issuer=issuer,
        authorization_endpoint=str(found["authorization_endpoint"]),
        token_endpoint=str(found["token_endpoint"]),
        userinfo_endpoint=found.get("userinfo_endpoint"),
        jwks_uri=str(found["jwks_uri"]),
    )


def _discover(issuer: str) -> dict[str, str | None]:
    url = issuer.rstrip("/") + DISCOVERY_PATH
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as error:
        raise ProviderUnavailable(f"{url}: {error}") from error
    # OpenID Connect Discovery 1.0, 4.3: the document must name the issuer it was asked for,
    # or a tampered or misdirected document could point sign-in elsewhere.
    if not isinstance(document, dict):
        raise ProviderUnavailable(f"{url} is not a discovery document")
    if document.get("issuer") != issuer:
        raise ProviderUnavailable(f"{url} names issuer {document.get('issuer')!r}, not {issuer!r}")
    keys = ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri")
    return {key: document.get(key) for key in keys}
