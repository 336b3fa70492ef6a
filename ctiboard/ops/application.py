"""The ASGI application around a Django HTTP app: asgi.py and the demo both build theirs here."""

from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from django.conf import settings

from ctiboard.board.routing import websocket_urlpatterns
from ctiboard.lib.wsframes import DirectFrames

from .origins import StrictOriginValidator
from .sockets import GracefulWebSockets


def build_application(http: Any) -> ProtocolTypeRouter:
    """``http`` serves HTTP; the board's WebSockets are added around it."""
    return ProtocolTypeRouter(
        {
            "http": http,
            # Pushed batches written straight to Daphne's connections (live.fanout), deflated
            # once for all of them; counted for /metrics; closed with 1012 (Service Restart)
            # when Daphne shuts down. Only from the board's own origin (ops.origins).
            "websocket": DirectFrames(
                GracefulWebSockets(
                    StrictOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
                ),
                compress=settings.CTIBOARD_WEBSOCKET_COMPRESSION,
            ),
        }
    )
