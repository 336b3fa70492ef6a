"""Process-wide tuning of the Python runtime, applied by the settings module at start-up."""

import gc


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
