from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TenancyConfig(AppConfig):
    name = "ctiboard.tenancy"
    # The app was ctiboard.pbx: its label keeps the tables (pbx_*) and migration history.
    label = "pbx"
    verbose_name = _("PBX accounts")
