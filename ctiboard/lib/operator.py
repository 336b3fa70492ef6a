"""Who may read ``/metrics`` and the details of ``/readyz``: the operator, not the internet.

With ``CTIBOARD_METRICS_TOKEN`` set, whoever sends ``Authorization: Bearer <token>`` (Prometheus'
``authorization`` setting), from anywhere; nobody else, not even the machine itself. Without a
token, callers on the machine itself (loopback): a container's own probe, a Prometheus on the
host. The address is the one the server saw, after Daphne's ``--proxy-headers``.
"""

import ipaddress
import secrets

CHALLENGE = 'Bearer realm="ctiboard operations"'


def is_operator(authorization: str, remote_addr: str, token: str | None) -> bool:
    if token:
        scheme, _, presented = authorization.partition(" ")
        # Bytes: compare_digest refuses non-ASCII str, and a header may carry anything.
        return scheme.lower() == "bearer" and secrets.compare_digest(
            presented.strip().encode(), token.encode()
        )
    try:
        return ipaddress.ip_address(remote_addr).is_loopback
    except ValueError:
        return False
