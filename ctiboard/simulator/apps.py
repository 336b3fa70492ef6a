from django.apps import AppConfig


class SimulatorConfig(AppConfig):
    name = "ctiboard.simulator"
    verbose_name = "PBX simulator"
