import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ctiboard.settings")
# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from ctiboard.board.routing import websocket_urlpatterns  # noqa: E402
from ctiboard.lib.wsframes import DirectFrames  # noqa: E402
from ctiboard.ops.sockets import GracefulWebSockets  # noqa: E402


def _http_app():  # type: ignore[no-untyped-def]
    if not settings.CTIBOARD_EMBEDDED_SIMULATOR:
        return django_asgi_app
    from ctiboard.demo.embedded import simulator_app
    from ctiboard.lib.mount import PrefixMount

    return PrefixMount(settings.CTIBOARD_SIMULATOR_PREFIX, simulator_app(), django_asgi_app)


application = ProtocolTypeRouter(
    {
        "http": _http_app(),
        # Pushed batches written straight to Daphne's connections (board.fanout), deflated
        # once for all of them; counted for /metrics; closed with 1012 (Service Restart)
        # when Daphne shuts down.
        "websocket": DirectFrames(
            GracefulWebSockets(
                AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns)))
            ),
            compress=settings.CTIBOARD_WEBSOCKET_COMPRESSION,
        ),
    }
)
