"""Tolerant parsing of NFON CTI API payloads.

Real NFON traffic carries values the spec does not list (line ``busy``, call state
``bridge``) and occasionally fields go missing. Parsing therefore keeps every raw value
and only refuses a frame that cannot be attributed to an extension or a call at all.
Whether a value is *known* is decided where it is shown, so the board can say
"unknown (on-hold)" for a value nobody has seen instead of guessing. The line ``busy`` is
known: public integrations see NFON send it for a line in a call. A ``bridge`` after
``answer`` is kept raw on the call and decides nothing.
"""

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

LINE_STATES = frozenset({"unknown", "offline", "idle", "ringing", "in-use", "busy"})
PRESENCES = frozenset({"offline", "available", "away", "busy", "dnd", "null"})
CALL_STATES = frozenset(
    {
        "start",
        "caller-wait",
        "caller-dial",
        "caller-ring",
        "caller-answer",
        "dial",
        "ring",
        "answer",
        "hangup",
        "end",
    }
)
CALL_ERRORS = frozenset({"timeout", "busy", "cancel", "reject", "unspecified"})
DIRECTIONS = frozenset({"inbound", "outbound"})


class MalformedEvent(ValueError):
    """A frame that cannot be used: not JSON, not an object, or without its key field."""


@dataclass(frozen=True, slots=True)
class StateEvent:
    extension: str
    customer: str | None
    line: str | None
    presence: str | None
    updated: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class CallEvent:
    uuid: str
    state: str | None
    caller: str | None
    caller_context: str | None
    callee: str | None
    callee_context: str | None
    extension: str | None
    direction: str | None
    error: str | None
    customer: str | None
    updated: datetime | None
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class ExtensionData:
    number: str
    name: str
    uuid: str


def _object(data: str | bytes | dict[str, Any]) -> dict[str, Any]:
    if isinstance(data, dict):
        return data
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: a frame of thousands of nested brackets.
        raise MalformedEvent(f"not JSON: {exc!r}"[:200]) from None
    if not isinstance(value, dict):
        raise MalformedEvent(f"expected a JSON object, got {type(value).__name__}")
    return value


def _text(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    # Nearly every value is a plain string: returned before the other checks (str() of one is
    # itself). The tuple, unlike ``str | int | float``, is not built anew on every call.
    if value is None or type(value) is str:
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (str, int, float)):
        return str(value)
    return None


# RFC 3339 with up to nanosecond precision. NFON's own examples also show a stray
# "HH:MM:SS:ff" form ("13:01:10:00.069620809+02:00"); accept that rather than drop the time.
_TIMESTAMP = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<h>\d{2}):(?P<m>\d{2}):(?P<s>\d{2})(?::\d{2})?"
    r"(?:\.(?P<frac>\d+))?(?P<tz>Z|z|[+-]\d{2}:?\d{2})?$"
)
# The forms of _TIMESTAMP that datetime.fromisoformat (C, several times faster) reads to the
# same result. fromisoformat also reads forms the regex refuses (a date alone, week dates, hours
# alone, "56,5", "+02", "+02:00:30", "56.+02:00", a space before the offset, any separator) and
# not the regex's "z" or non-ASCII digits: the strings outside this pattern go to the regex.
_FAST_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?"
)


def parse_timestamp(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _FAST_TIMESTAMP.fullmatch(text):
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            pass  # out of range ("24:00:00", "+24:00"): the regex path refuses it the same way
        else:
            return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return _parse_timestamp_regex(text)


def _parse_timestamp_regex(text: str) -> datetime | None:
    match = _TIMESTAMP.match(text)
    if not match:
        return None
    micros = int((match["frac"] or "0")[:6].ljust(6, "0"))
    tz_text = match["tz"]
    try:
        if tz_text is None or tz_text in ("Z", "z"):
            tz: timezone = UTC
        else:
            sign = -1 if tz_text[0] == "-" else 1
            digits = tz_text[1:].replace(":", "")
            # An offset of 24 hours or more ("+99:99") is refused by timezone(): no time then.
            tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
        year, month, day = (int(part) for part in match["date"].split("-"))
        return datetime(
            year, month, day, int(match["h"]), int(match["m"]), int(match["s"]), micros, tz
        )
    except ValueError:
        return None


def parse_state(data: str | bytes | dict[str, Any]) -> StateEvent:
    obj = _object(data)
    extension = _text(obj, "extension")
    if not extension:
        raise MalformedEvent("state event without extension")
    return StateEvent(
        extension=extension,
        customer=_text(obj, "customer"),
        line=_text(obj, "line"),
        presence=_text(obj, "presence"),
        updated=parse_timestamp(obj.get("updated")),
        raw=obj,
    )


def parse_call(data: str | bytes | dict[str, Any]) -> CallEvent:
    obj = _object(data)
    uuid = _text(obj, "uuid")
    if not uuid:
        raise MalformedEvent("call event without uuid")
    return CallEvent(
        uuid=uuid,
        state=_text(obj, "state"),
        caller=_text(obj, "caller"),
        caller_context=_text(obj, "caller_context"),
        callee=_text(obj, "callee"),
        callee_context=_text(obj, "callee_context"),
        extension=_text(obj, "extension"),
        direction=_text(obj, "direction"),
        error=_text(obj, "error"),
        customer=_text(obj, "customer"),
        updated=parse_timestamp(obj.get("updated")),
        raw=obj,
    )


def parse_extension_data(obj: object) -> ExtensionData:
    if not isinstance(obj, dict):
        raise MalformedEvent("extension data entry is not an object")
    number = _text(obj, "extension_number")
    if not number:
        raise MalformedEvent("extension data entry without extension_number")
    return ExtensionData(
        number=number, name=_text(obj, "name") or "", uuid=_text(obj, "uuid") or ""
    )
