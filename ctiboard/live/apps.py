from django.apps import AppConfig


class LiveConfig(AppConfig):
    name = "ctiboard.live"
    verbose_name = "Live messages"

    def ready(self) -> None:
        from . import signals

        signals.connect()
