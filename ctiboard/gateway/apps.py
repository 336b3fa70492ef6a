from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class GatewayConfig(AppConfig):
    name = "ctiboard.gateway"
    verbose_name = _("CTI gateway")

    def ready(self) -> None:
        from . import signals

        signals.connect()
