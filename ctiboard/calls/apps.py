from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CallsConfig(AppConfig):
    name = "ctiboard.calls"
    verbose_name = _("Calls")
