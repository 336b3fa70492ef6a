from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PbxConfig(AppConfig):
    name = "ctiboard.pbx"
    verbose_name = _("PBX accounts")

    def ready(self) -> None:
        from . import signals

        signals.connect()
