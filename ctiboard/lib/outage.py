"""A dependency that keeps failing gets one warning, then a summary now and then, and a line
when it is back: an outage of Redis or the database must not become a traceback per try."""

import logging
import threading
import time

SUMMARY_EVERY = 60.0


def is_connection_error(error: BaseException) -> bool:
    """A backend's connection failed: a socket's error, or one of the Redis client's."""
    return isinstance(error, OSError) or type(error).__module__.startswith("redis")


class Outage:
    """The state of one dependency as one component sees it (thread-safe)."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self.logger = logger
        self.what = what
        self._lock = threading.Lock()
        self._since: float | None = None
        self._failures = 0
        self._summarised = 0.0

    @property
    def down(self) -> bool:
        return self._since is not None

    def failed(self, error: BaseException) -> None:
        now = time.monotonic()
        with self._lock:
            self._failures += 1
            if self._since is None:
                self._since = self._summarised = now
                self.logger.warning("%s unavailable: %r", self.what, error)
            elif now - self._summarised >= SUMMARY_EVERY:
                self._summarised = now
                self.logger.warning(
                    "%s still unavailable after %.0f s (%d failures; last: %r)",
                    self.what,
                    now - self._since,
                    self._failures,
                    error,
                )

    def recovered(self) -> None:
        if self._since is None:
            return
        with self._lock:
            if self._since is None:
                return
            self.logger.warning(
                "%s available again after %.0f s (%d failures)",
                self.what,
                time.monotonic() - self._since,
                self._failures,
            )
            self._since, self._failures = None, 0


class ThrottleRepeats(logging.Filter):
    """For a library that logs a traceback per retry (channels_redis's pub/sub receive task
    does, once a second, while Redis is down): the first record of each message passes as a
    warning without its traceback, repeats within a minute are counted, then summarised."""

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self._seen: dict[tuple[str, object], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.msg)
        now = time.monotonic()
        error = record.exc_info[1] if record.exc_info else None
        with self._lock:
            first, repeats = self._seen.get(key, (0.0, -1))
            if repeats >= 0 and now - first < SUMMARY_EVERY:
                self._seen[key] = (first, repeats + 1)
                return False
            self._seen[key] = (now, 0)
        if repeats > 0:
            record.msg = f"{record.getMessage()} (and {repeats} times more in the last minute)"
            record.args = ()
        if error is not None:
            record.msg = f"{record.getMessage()}: {error!r}"
            record.args = ()
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True
