"""One discrete-event clock for every simulated tenant, in real or stepped time.

Every timed step (ringing, talking, the click-to-dial state machine, generated traffic) is a
timer on one ``Scheduler``, so a simulator either runs in real time (``run_realtime()``) or is
stepped instantly (``advance()``), and the same seed gives the same events in the same order.
"""

import asyncio
import heapq
import itertools
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("ctiboard.simulator")


class Timer:
    __slots__ = ("args", "callback", "cancelled", "when")

    def __init__(self, when: float, callback: Callable[..., None], args: tuple[Any, ...]) -> None:
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Scheduler:
    """A discrete-event clock: timers fire in (time, insertion) order, in real or stepped time.

    One heap for every tenant keeps thousands of concurrent simulated calls at the cost of a
    heap entry each, instead of an asyncio task each.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Timer]] = []
        self._sequence = itertools.count()
        self._now = 0.0
        self._clock: Callable[[], float] | None = None
        self._dispatching = False
        self._waiter: asyncio.Future[None] | None = None

    def now(self) -> float:
        # While a timer runs, "now" is its due time, so what it schedules does not depend on how
        # late the event loop woke up: this is what makes runs with one seed reproducible.
        if self._clock is None or self._dispatching:
            return self._now
        return self._clock()

    def call_later(self, delay: float, callback: Callable[..., None], *args: Any) -> Timer:
        timer = Timer(self.now() + max(0.0, delay), callback, args)
        heapq.heappush(self._heap, (timer.when, next(self._sequence), timer))
        waiter = self._waiter
        if waiter is not None and not waiter.done() and self._heap[0][2] is timer:
            waiter.set_result(None)
        return timer

    def run_until(self, deadline: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= deadline:
            when, _, timer = heapq.heappop(heap)
            if timer.cancelled:
                continue
            self._now = when
            self._dispatching = True
            try:
                timer.callback(*timer.args)
            except Exception:
                # One broken scenario must not stop every tenant's simulation.
                logger.exception("simulator step %r failed", timer.callback)
            finally:
                self._dispatching = False
        self._now = max(self._now, deadline)

    def advance(self, seconds: float) -> None:
        if self._clock is not None:
            raise RuntimeError("the simulator is running in real time; advance() is for stepping")
        self.run_until(self._now + seconds)

    async def run_realtime(self) -> None:
        if self._clock is not None:
            raise RuntimeError("the simulator is already running")
        loop = asyncio.get_running_loop()
        offset = loop.time() - self._now
        clock = self._clock = lambda: loop.time() - offset
        try:
            while True:
                self.run_until(clock())
                waiter = self._waiter = loop.create_future()
                wake = None
                if self._heap:
                    wake = loop.call_at(self._heap[0][0] + offset, _resolve, waiter)
                try:
                    await waiter
                finally:
                    self._waiter = None
                    if wake is not None:
                        wake.cancel()
        finally:
            self._now = clock()
            self._clock = None


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
