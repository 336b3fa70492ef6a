"""The gateway's access and refresh tokens: short-lived JWTs like NFON's, naming the API token
they were issued for, so that each request (and each open stream) checks that token again.

Signed HS256 with a key derived from SECRET_KEY (NFON signs RS512): only ctiboard verifies
them; a client reads ``iat`` and ``exp`` without verifying, as it does NFON's.
"""

import secrets
import time
from dataclasses import dataclass
from typing import Literal

import jwt
from django.utils.crypto import salted_hmac

from .models import ApiToken

ACCESS_TTL = 300  # seconds, as NFON's
REFRESH_TTL = 3600
ALGORITHM = "HS256"

Kind = Literal["access", "refresh"]


class InvalidToken(Exception):
    pass


@dataclass(frozen=True)
class Claims:
    api_token: int
    account: str
    username: str


def _key() -> bytes:
    return salted_hmac("ctiboard.gateway.jwt", "signing key", algorithm="sha256").digest()


def issue(token: ApiToken, kind: Kind, ttl: int) -> str:
    now = int(time.time())
    claims = {
        "sub": token.user.get_username(),
        "customer": token.tenant.account,
        "api_token": token.pk,
        "scope": token.scope,
        "token_type": kind,
        "extended_presence": True,
        "iat": now,
        "exp": now + ttl,
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(claims, _key(), algorithm=ALGORITHM)


def pair(token: ApiToken) -> dict[str, str]:
    return {
        "access-token": issue(token, "access", ACCESS_TTL),
        "refresh-token": issue(token, "refresh", REFRESH_TTL),
    }


def verify(value: str, kind: Kind, account: str) -> Claims:
    try:
        claims = jwt.decode(
            value,
            _key(),
            algorithms=[ALGORITHM],
            options={"require": ["exp", "iat", "sub", "customer", "api_token", "token_type"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from None
    if claims["token_type"] != kind:
        raise InvalidToken(f"not an {kind} token")
    if claims["customer"] != account or not isinstance(claims["api_token"], int):
        raise InvalidToken("not a token of this K-Account")
    return Claims(claims["api_token"], claims["customer"], claims["sub"])
