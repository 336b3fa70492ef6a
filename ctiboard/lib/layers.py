"""The channel layer of a single process (the demo, the tests)."""

import time

from channels.layers import InMemoryChannelLayer


class SweepingInMemoryChannelLayer(InMemoryChannelLayer):
    """Channels' in-memory layer, sweeping out expired messages and group memberships at most
    once per ``sweep_interval`` instead of on every send and receive.

    The sweep walks every channel of the process: on every receive, with N open board
    sockets each pushed batch cost N sweeps of N channels. Expired messages are still never
    delivered late by more than the interval (the default expiry is a minute).
    """

    def __init__(self, *args: object, sweep_interval: float = 1.0, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.sweep_interval = sweep_interval
        self._swept_at = -float("inf")

    def _clean_expired(self) -> None:
        now = time.monotonic()
        if now - self._swept_at < self.sweep_interval:
            return
        self._swept_at = now
        super()._clean_expired()
