"""The board socket's handshake must come from the board's own page: its exact origin.

Browsers send a WebSocket handshake to any site with that site's cookies (no CORS, no
SameSite=Strict here): only the Origin header tells our page from another. Channels'
AllowedHostsOriginValidator compares the host alone; here scheme, host and port must match
the address the request came to, as Django's CSRF check judges an unsafe request's Origin:
``"https" if request.is_secure() else "http"`` (SECURE_PROXY_SSL_HEADER included) and
``request.get_host()`` (ALLOWED_HOSTS, USE_X_FORWARDED_HOST/PORT included), or one of
CSRF_TRUSTED_ORIGINS (``https://*.example.com`` for its subdomains, as for CSRF).

A handshake without Origin is refused: every browser sends one, so it comes from a program
(a script holding a session cookie), and the board socket serves only the board page.
"""

import logging
from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.utils.http import is_same_domain

logger = logging.getLogger(__name__)


class _Handshake(HttpRequest):
    """The handshake as Django sees a request: META from the ASGI scope, as ASGIRequest
    builds it (which needs an HTTP method a WebSocket scope does not have)."""

    def __init__(self, scope: dict[str, Any]) -> None:
        super().__init__()
        self._secure_scheme = scope.get("scheme") in ("wss", "https")
        server = scope.get("server")
        if server and server[1] is not None:
            self.META["SERVER_NAME"], self.META["SERVER_PORT"] = str(server[0]), str(server[1])
        for name, value in scope.get("headers", []):
            key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
            text = value.decode("latin-1")
            self.META[key] = f"{self.META[key]},{text}" if key in self.META else text

    def _get_scheme(self) -> str:
        return "https" if self._secure_scheme else "http"


def origin_allowed(scope: dict[str, Any]) -> bool:
    request = _Handshake(scope)
    origin = request.META.get("HTTP_ORIGIN")
    if not origin or not ({"HTTP_HOST", "SERVER_NAME"} & request.META.keys()):
        return False  # no address to compare it with
    try:
        own = f"{request.scheme}://{request.get_host()}"
    except DisallowedHost:
        return False
    if origin == own:
        return True
    return _trusted(origin)


def _trusted(origin: str) -> bool:
    trusted = settings.CSRF_TRUSTED_ORIGINS
    if origin in trusted:
        return True
    parsed = urlsplit(origin)
    for pattern in trusted:
        if "*" not in pattern:
            continue
        allowed = urlsplit(pattern)
        if allowed.scheme == parsed.scheme and is_same_domain(
            parsed.netloc, allowed.netloc.removeprefix("*")
        ):
            return True
    return False


class StrictOriginValidator:
    """ASGI middleware for the ``websocket`` scope: refuses a handshake from another origin
    (an HTTP 403, before the application sees it)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            logger.info("refused a board socket from origin %r", _origin_of(scope))
            denier = WebsocketDenier()
            return await denier(scope, receive, send)
        return await self.app(scope, receive, send)


def _origin_of(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"origin":
            return str(value.decode("latin-1"))
    return None
