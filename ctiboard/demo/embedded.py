"""The demo's embedded PBX simulator: one per process, served under a URL prefix."""

from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from ctiboard.lib.mount import PrefixMount
from ctiboard.simulator.app import build_app
from ctiboard.simulator.simulator import Simulator

_simulator: Simulator | None = None
_app: Any = None


def embedded_simulator() -> Simulator:
    global _simulator
    if _simulator is None:
        _simulator = Simulator(seed=settings.CTIBOARD_DEMO_SEED)
    return _simulator


def simulator_app() -> Any:
    global _app
    if _app is None:
        _app = build_app(embedded_simulator())
    return _app


def with_simulator(http: Any) -> PrefixMount:
    """``http`` with the embedded simulator mounted under CTIBOARD_SIMULATOR_PREFIX."""
    # The one place that mounts it: whatever asked (asgi.py, the demo), production does not.
    if not settings.CTIBOARD_ALLOW_SIMULATOR:
        raise ImproperlyConfigured(settings.SIMULATOR_REFUSED)
    return PrefixMount(settings.CTIBOARD_SIMULATOR_PREFIX, simulator_app(), http)
