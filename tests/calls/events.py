"""Call and line events as the PBX would send them, at chosen moments, for unit tests."""

from datetime import UTC, datetime, timedelta
from typing import Any

from ctiboard.cti.events import CallEvent, StateEvent, parse_call, parse_state

T0 = datetime(2025, 9, 23, 14, 0, 0, tzinfo=UTC)
REMOTE = "4930123456"


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def call(uuid: str, state: str, ext: str = "100", seconds: float = 0, **fields: Any) -> CallEvent:
    inbound = fields.pop("direction", "inbound") == "inbound"
    return parse_call(
        {
            "uuid": uuid,
            "state": state,
            "extension": ext,
            "direction": "inbound" if inbound else "outbound",
            "caller": REMOTE if inbound else ext,
            "callee": ext if inbound else REMOTE,
            "updated": at(seconds),
            **fields,
        }
    )


def line(ext: str, value: str, seconds: float) -> StateEvent:
    return parse_state({"extension": ext, "line": value, "updated": at(seconds)})
