from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class WebhooksConfig(AppConfig):
    name = "ctiboard.webhooks"
    verbose_name = _("Action-URL webhooks")
