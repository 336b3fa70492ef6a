"""RS512 JWTs as NFON issues them: access and refresh tokens, verified against a JWKS."""

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from ctiboard.simulator.tenant import TenantState

ALGORITHM = "RS512"
TokenType = Literal["access", "refresh"]


class InvalidToken(Exception):
    """The token is missing, forged, expired, or of the wrong type."""


@dataclass(frozen=True, slots=True)
class Claims:
    customer: str
    username: str
    kind: TokenType
    expires_at: float


def _numeric_date(value: float) -> int | float:
    # RFC 7519 NumericDates may be fractional; keep whole seconds whole as NFON does, and only
    # go fractional for the sub-second lifetimes tests use.
    return int(value) if value == int(value) else value


class TokenIssuer:
    """Signs and verifies tokens with one RSA key generated when the simulator starts."""

    def __init__(self) -> None:
        self._private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._public_key = self._private_key.public_key()
        self.kid = uuid.uuid4().hex

    def issue(self, tenant: TenantState, kind: TokenType, ttl: float) -> str:
        now = time.time() + tenant.clock_skew
        # Whole-second TTLs give whole-second expiries; fractional ones keep their precision.
        issued_at = int(now) if ttl == int(ttl) else now
        claims: dict[str, Any] = {
            "customer": tenant.account,
            "sub": tenant.username,
            "extended_presence": tenant.extended_presence,
            "token_type": kind,
            "iat": int(now),
            "exp": _numeric_date(issued_at + ttl),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._private_key, algorithm=ALGORITHM, headers={"kid": self.kid})

    def verify(
        self, token: str, kind: TokenType, skew: Callable[[str], float] = lambda customer: 0.0
    ) -> Claims:
        """The token's claims if valid now by the clock of its customer's PBX (``skew``)."""
        try:
            payload = jwt.decode(
                token,
                self._public_key,
                algorithms=[ALGORITHM],
                # Expiry is checked below with sub-second precision (PyJWT truncates to seconds).
                options={
                    "verify_exp": False,
                    # iat is the PBX's own clock too, which may run ahead of this machine's.
                    "verify_iat": False,
                    "require": ["customer", "sub", "token_type", "exp", "iat", "jti"],
                },
            )
        except jwt.InvalidTokenError as exc:
            raise InvalidToken(str(exc)) from None
        if payload["token_type"] != kind:
            raise InvalidToken(f"a {payload['token_type']} token is not a {kind} token")
        expires_at = payload["exp"]
        customer, username = payload["customer"], payload["sub"]
        if not isinstance(customer, str) or not isinstance(username, str):
            raise InvalidToken("malformed claims")
        if not isinstance(expires_at, int | float) or expires_at <= time.time() + skew(customer):
            raise InvalidToken("token expired")
        return Claims(customer, username, kind, float(expires_at))

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        key = RSAAlgorithm.to_jwk(self._public_key, as_dict=True)
        key.update({"alg": ALGORITHM, "kid": self.kid, "use": "sig"})
        return {"keys": [key]}
