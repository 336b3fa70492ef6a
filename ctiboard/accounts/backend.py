"""The authentication backend for company sign-in (OpenID Connect, mozilla-django-oidc).

Users are matched by their verified e-mail address, case-insensitively, never by username;
a new one is created and placed in his tenant (``placement``) without any rights.
"""

import logging
from collections.abc import Mapping
from typing import Any

import jwt
import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import SuspiciousOperation
from django.db import transaction
from django.http import HttpRequest
from mozilla_django_oidc.auth import OIDCAuthenticationBackend

from . import placement
from .provider import ProviderUnavailable, provider

log = logging.getLogger(__name__)


def email_of(claims: Mapping[str, Any]) -> str | None:
    """The e-mail address, if the provider says it is verified (a boolean, or "true")."""
    email = claims.get("email")
    verified = claims.get(settings.CTIBOARD_OIDC_EMAIL_VERIFIED_CLAIM)
    if not isinstance(email, str) or "@" not in email.strip():
        return None
    if verified is not True and str(verified).lower() != "true":
        return None
    return email.strip()


class CompanySignIn(OIDCAuthenticationBackend):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Django builds every backend for each authenticate() and each request's get_user():
        # the provider's endpoints are looked up when a sign-in needs them, not here.
        self.UserModel = get_user_model()
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None
        self.issuer: str | None = None

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> User | None:  # type: ignore[override]
        # Only the callback view passes the session's PKCE verifier: a password form posted
        # to a URL with ?code=…&state=… must not start a token exchange.
        if request is None or kwargs.get("code_verifier") is None:
            return None
        try:
            found = provider()
        except ProviderUnavailable as error:
            log.warning("company sign-in: provider unavailable: %s", error)
            return None
        self.OIDC_OP_TOKEN_ENDPOINT = found.token_endpoint
        self.OIDC_OP_USER_ENDPOINT = found.userinfo_endpoint
        self.OIDC_OP_JWKS_ENDPOINT = found.jwks_uri
        self.issuer = found.issuer
        try:
            user: User | None = super().authenticate(request, **kwargs)
        except (requests.RequestException, SuspiciousOperation, jwt.PyJWTError) as error:
            # A refused code or verifier, a bad signature, nonce, audience or issuer.
            log.warning("company sign-in refused: %s", error)
            return None
        return user

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        payload: dict[str, Any] = super().verify_token(token, **kwargs)
        # The library checks signature, expiry and nonce, not who the token is for and from
        # (OpenID Connect Core 3.1.3.7).
        audience = payload.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation(f"id_token for audience {audience!r}")
        if self.issuer and payload.get("iss") != self.issuer:
            raise SuspiciousOperation(f"id_token from issuer {payload.get('iss')!r}")
        if "exp" not in payload:
            raise SuspiciousOperation("id_token without expiry")
        return payload

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> Any:
        """The id_token's claims, completed by the userinfo endpoint's if there is one."""
        claims = dict(payload)
        if self.OIDC_OP_USER_ENDPOINT:
            info = super().get_userinfo(access_token, id_token, payload)
            # OpenID Connect Core 5.3.2: another subject's userinfo must not be used.
            if info.get("sub") != payload.get("sub"):
                raise SuspiciousOperation("userinfo of another subject")
            claims.update(info)
        return claims

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        if email_of(claims) is None:
            log.warning(
                "company sign-in refused: no verified e-mail (%s=%r)",
                settings.CTIBOARD_OIDC_EMAIL_VERIFIED_CLAIM,
                claims.get(settings.CTIBOARD_OIDC_EMAIL_VERIFIED_CLAIM),
            )
            return False
        return True

    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:
        email = email_of(claims)
        if email is None:
            return self.UserModel.objects.none()
        return self.UserModel.objects.filter(email__iexact=email)

    def create_user(self, claims: dict[str, Any]) -> User:
        email = email_of(claims)
        assert email is not None  # verify_claims came first
        with transaction.atomic():
            user: User = self.UserModel.objects.create_user(
                self.get_username(claims),
                email=email,
                first_name=str(claims.get("given_name", ""))[:150],
                last_name=str(claims.get("family_name", ""))[:150],
            )
            placement.place(user, claims)
        log.info("company sign-in created user %s", user.get_username())
        return user

    def update_user(self, user: User, claims: dict[str, Any]) -> User:
        placement.place(user, claims)
        return user

    def get_username(self, claims: dict[str, Any]) -> str:
        """The e-mail address, lower case; with a suffix if a user already has it as name."""
        base = str(email_of(claims)).lower()[:140]
        candidate, number = base, 1
        while self.UserModel.objects.filter(username__iexact=candidate).exists():
            number += 1
            candidate = f"{base}-{number}"
        return candidate
