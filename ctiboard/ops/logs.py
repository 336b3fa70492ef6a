"""Every line a process writes about itself goes through logging, in UTC: one JSON object per
line for log collectors (``LOG_FORMAT=json``), or plain text.

Besides Django's and our own loggers that is Daphne's access log (written straight to stdout by
Daphne's command line) and the last words of a process: an uncaught exception in any thread.
"""

import json
import logging
import os
import sys
import threading
import types
from datetime import UTC, datetime
from typing import Any

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is kept.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def utc_time(created: float) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``: 2025-01-31T12:00:00.123Z."""
    moment = datetime.fromtimestamp(created, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "process", "role", ...extra, "exception"}``."""

    role = ""  # set by configure(): which process wrote the line

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": utc_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if self.role:
            entry["role"] = self.role
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        # default=str: an odd extra value must never cost the log line.
        return json.dumps(entry, ensure_ascii=False, default=str)


class PlainFormatter(logging.Formatter):
    """``time level logger message``, the time in UTC like the JSON lines'."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return utc_time(record.created)


def configure(role: str) -> None:
    """At start-up, from the settings module (before Django configures logging)."""
    JsonFormatter.role = role
    _route_daphne_access_log()
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


_crash_logger = logging.getLogger("ctiboard.crash")


def _log_uncaught(
    kind: type[BaseException], error: BaseException, trace: types.TracebackType | None
) -> None:
    """The process's last words: the uncaught exception as one record, not a bare traceback."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, trace)
        return
    record = _crash_logger.makeRecord(
        _crash_logger.name,
        logging.CRITICAL,
        "",
        0,
        "uncaught exception: %r",
        (error,),
        (kind, error, trace),
    )
    if logging.getLogger().handlers:
        _crash_logger.handle(record)
    else:  # it happened before logging was configured (settings import): still one line
        formatter = JsonFormatter() if _json_wanted() else PlainFormatter()
        sys.stderr.write(formatter.format(record) + "\n")


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is not None:
        _log_uncaught(args.exc_type, args.exc_value, args.exc_traceback)


def _json_wanted() -> bool:
    return os.environ.get("LOG_FORMAT", "").strip().lower() == "json"


_access_logger = logging.getLogger("daphne.access")


def _route_daphne_access_log() -> None:
    """Daphne's command line writes its access log (one NCSA line per request and socket
    event) to stdout itself; it builds the writer after loading the application, so changing
    the class now makes those lines log records of ``daphne.access``."""
    try:
        from daphne.access import AccessLogGenerator
    except ImportError:  # not installed: no Daphne, no access log
        return

    def write_entry(
        self: AccessLogGenerator,
        host: str,
        date: datetime,
        request: str,
        status: int | None = None,
        length: int | None = None,
        ident: str | None = None,
        user: str | None = None,
    ) -> None:
        _access_logger.info(
            "%s %s %s %s",
            host,
            request,
            status if status is not None else "-",
            length if length is not None else "-",
            extra={"client": host, "request": request, "status": status, "size": length},
        )

    AccessLogGenerator.write_entry = write_entry  # type: ignore[method-assign]
