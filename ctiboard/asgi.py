import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ctiboard.settings")
# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from django.conf import settings  # noqa: E402

from ctiboard.ops.application import build_application  # noqa: E402


def _http_app():  # type: ignore[no-untyped-def]
    if not settings.CTIBOARD_EMBEDDED_SIMULATOR:
        return django_asgi_app
    from ctiboard.demo.embedded import with_simulator

    return with_simulator(django_asgi_app)


application = build_application(_http_app())
