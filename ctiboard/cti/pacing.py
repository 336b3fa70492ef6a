"""How often the CTI client may reopen a long-lived stream (state or call stream)."""

import asyncio
import math
import random
import time

# A long-lived stream (state or call stream) is opened at most once per this many seconds...
RECONNECT_INTERVAL = 1.0
# ... and, while its streams keep ending within that second, ever more rarely, up to this...
RECONNECT_CAP = 15.0
# ... until one of them has stayed open this long (or until its renewal).
HEALTHY_STREAM_SECONDS = 10.0


class Pacing:
    """How soon a long-lived stream of one kind may be opened again.

    Every reconnect path goes through it, whoever the caller: at most one attempt per
    ``RECONNECT_INTERVAL``; when streams keep ending early (closed by the server, or failing,
    within ``RECONNECT_INTERVAL`` of opening), the interval doubles from the second such end
    on, up to ``RECONNECT_CAP``, with jitter. A stream that stays open
    ``HEALTHY_STREAM_SECONDS`` or until its renewal resets it (a renewal due at once is put
    off, see ``CTIClient._stream``); one that ends in between takes one early end back.
    Failures before a stream is opened do not count: their caller backs off from those (the
    ingest does).
    """

    def __init__(self) -> None:
        self.early_ends = 0
        self.last_attempt = -math.inf

    @property
    def interval(self) -> float:
        """The current minimum interval between two attempts (before jitter)."""
        return min(RECONNECT_CAP, RECONNECT_INTERVAL * 2 ** max(0, self.early_ends - 1))

    async def wait(self) -> float:
        """Sleep until the next attempt may start; returns the attempt's monotonic time."""
        interval = self.interval
        if interval > RECONNECT_INTERVAL:
            interval = max(RECONNECT_INTERVAL, random.uniform(interval / 2, interval))
        delay = self.last_attempt + interval - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self.last_attempt = time.monotonic()
        return self.last_attempt

    def ended(self, *, lived: float, renewed: bool) -> None:
        """A stream that was opened ended after ``lived`` seconds, for its renewal or not."""
        if renewed or lived >= HEALTHY_STREAM_SECONDS:
            self.early_ends = 0
        elif lived < RECONNECT_INTERVAL:
            self.early_ends = min(self.early_ends + 1, 32)
        else:
            self.early_ends = max(0, self.early_ends - 1)
