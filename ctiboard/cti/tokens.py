"""A CTI token pair, and when to renew it, read from the token's own claims."""

import math
import time
from dataclasses import dataclass

import jwt

from .errors import CTIError

REFRESH_MARGIN_SECONDS = 30.0
# A token whose lifetime cannot be read from its iat and exp claims: without exp it is treated
# as living this long; without iat, what the local clock says is left of it, within these bounds
# (NFON's tokens live 5 minutes). The local clock may be minutes off the PBX's.
UNKNOWN_LIFETIME = 60.0
FALLBACK_LIFETIME_BOUNDS = (10.0, 300.0)


@dataclass
class Tokens:
    """A token pair, and when to renew it on this process's monotonic clock.

    The PBX's clock (in the token's ``iat`` and ``exp``) and the worker's wall clock may be
    minutes apart: the lifetime is ``exp - iat``, both of the PBX's clock, counted from
    ``obtained_at``, the ``time.monotonic()`` at which the request that brought the pair was
    sent (the PBX issued it later than that, so the count errs on the early side).
    """

    access: str
    refresh: str
    obtained_at: float
    lifetime: float
    # Refresh this long before expiry, so no request races it: 30 s of NFON's 5 minutes, a
    # fifth of the lifetime for shorter tokens.
    refresh_margin: float = REFRESH_MARGIN_SECONDS

    @classmethod
    def from_response(cls, body: object, *, requested_at: float | None = None) -> "Tokens":
        if not isinstance(body, dict):
            raise CTIError("login answered without a token object")
        access, refresh = body.get("access-token"), body.get("refresh-token")
        if not isinstance(access, str) or not isinstance(refresh, str):
            raise CTIError("login answered without access-token/refresh-token")
        lifetime = _lifetime(access)
        return cls(
            access=access,
            refresh=refresh,
            obtained_at=time.monotonic() if requested_at is None else requested_at,
            lifetime=lifetime,
            refresh_margin=min(REFRESH_MARGIN_SECONDS, lifetime / 5),
        )

    @property
    def expires_at(self) -> float:
        """When the access token expires, on the ``time.monotonic()`` clock."""
        return self.obtained_at + self.lifetime

    @property
    def renew_at(self) -> float:
        """When the access token is due for renewal, on the ``time.monotonic()`` clock."""
        return self.expires_at - self.refresh_margin

    def fresh(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return self.renew_at > now


def _lifetime(token: str) -> float:
    """Seconds the access token lives from its issue, by the PBX's clock alone.

    The signature is NFON's business (and verifiable through JWKS); the client only needs
    to know when to refresh. Never ``exp`` against the local wall clock where ``iat`` is
    there: a worker clock minutes ahead made every token look expired on arrival (and
    renewal due at once), one behind made expired tokens look fresh.
    """
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return UNKNOWN_LIFETIME
    expires, issued = _numeric_date(claims.get("exp")), _numeric_date(claims.get("iat"))
    if expires is None:
        return UNKNOWN_LIFETIME
    if issued is not None and expires > issued:
        # A whole-second iat may be truncated: the token may have been issued up to a second
        # later, with as much less to live (NFON's 5 minutes leave room for that; the short
        # tokens of tests do not).
        return max(0.0, expires - issued - (1.0 if issued == int(issued) else 0.0))
    low, high = FALLBACK_LIFETIME_BOUNDS
    return min(max(expires - time.time(), low), high)


def _numeric_date(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
