"""Process-wide tuning of the Python runtime, applied by the settings module at start-up."""

import gc
import logging
import time

logger = logging.getLogger(__name__)


def tune_gc(young_threshold: int) -> None:
    """Collect the youngest generation only after ``young_threshold`` new objects (Python's
    default is 700; 0 keeps it).

    A 5,000-tile board page or socket sync makes tens of thousands of short-lived objects
    (rows, tiles, strings): at the default the collector ran dozens of times per request and
    every few requests walked the whole heap (the 20,000-tile cache included), 30-40 % of the
    request (bench/README.md). Garbage in cycles then waits a little longer, a few MB at most.
    """
    if young_threshold:
        _, middle, old = gc.get_threshold()
        gc.set_threshold(young_threshold, middle, old)


_collection_started: float | None = None
_slow_collection_seconds = 0.0


def _time_collection(phase: str, info: dict[str, int]) -> None:
    global _collection_started
    if phase == "start":
        _collection_started = time.perf_counter()
        return
    started, _collection_started = _collection_started, None
    if started is None:
        return
    took = time.perf_counter() - started
    if took >= _slow_collection_seconds:
        # A collection stops every thread of the process, the event loop's pushes included.
        logger.warning(
            "garbage collection of generation %d took %.0f ms (%d objects freed)",
            info.get("generation", -1),
            took * 1000,
            info.get("collected", 0),
        )


def report_slow_collections(threshold_ms: int) -> None:
    """Log a warning for every collection that takes ``threshold_ms`` or longer (0: never).

    A full collection walks every object of the process: with thousands of sockets open, each
    with its protocol, transport and consumer, that can stall every push for a while, and
    nothing else would say so.
    """
    global _slow_collection_seconds
    if _time_collection in gc.callbacks:
        gc.callbacks.remove(_time_collection)
    if threshold_ms:
        _slow_collection_seconds = threshold_ms / 1000
        gc.callbacks.append(_time_collection)
