"""Faults injected into one tenant through the control API: HTTP errors, delays, a revoked
token, and stream faults (drop, truncate, stall, malformed frames)."""

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ctiboard.simulator.model import SimError, frame, new_uuid, rfc3339
from ctiboard.simulator.streams import (
    CLOSE,
    STALL,
    STREAM_KINDS,
    Directive,
    StreamKind,
    Subscription,
)
from ctiboard.simulator.tenant import TenantState

MALFORMED_VARIANTS = ("broken_json", "unknown_fields", "missing_fields")
STREAM_FAULTS = ("drop", "truncate", "unauthorized", "stall", "malformed")


@dataclass(slots=True)
class HttpFault:
    status: int
    endpoint: str  # "*", "/path" (any method) or "METHOD /path", paths as in the spec
    remaining: int


@dataclass(slots=True)
class Injected:
    """The faults in force for one tenant."""

    http_errors: list[HttpFault] = field(default_factory=list)
    delay: float = 0.0
    delay_endpoint: str = "*"
    delay_remaining: int | None = None  # None: every matching request until cleared
    unauthorized_once: bool = False

    def describe(self) -> dict[str, Any]:
        return asdict(self)


def _endpoint_matches(pattern: str, method: str, path: str) -> bool:
    return pattern in ("*", path, f"{method} {path}")


class TenantFaults:
    """What the control API injected into one tenant, applied by the API as requests come."""

    def __init__(self, tenant: TenantState) -> None:
        self.tenant = tenant
        self.injected = Injected()

    def describe(self) -> dict[str, Any]:
        return self.injected.describe()

    def _targets(self, stream: str) -> list[Subscription]:
        if stream == "all":
            return [s for kind in STREAM_KINDS for s in self.tenant.subscribers[kind]]
        if stream not in STREAM_KINDS:
            raise SimError(f"stream must be all or one of {', '.join(STREAM_KINDS)}")
        return list(self.tenant.subscribers[stream])  # type: ignore[index]

    def inject_stream_fault(self, kind: str, stream: str = "all", variant: str = "") -> int:
        """Apply a fault to the open streams; returns how many streams it reached."""
        if kind not in STREAM_FAULTS:
            raise SimError(f"stream fault must be one of {', '.join(STREAM_FAULTS)}")
        if kind == "malformed" and variant not in MALFORMED_VARIANTS:
            raise SimError(f"variant must be one of {', '.join(MALFORMED_VARIANTS)}")
        targets = self._targets(stream)
        if kind == "unauthorized":
            self.injected.unauthorized_once = True
        for subscription in targets:
            if kind in ("drop", "unauthorized"):
                subscription.push(CLOSE)
            elif kind == "truncate":
                whole = self._sample_frame(subscription.kind)
                subscription.push(Directive("truncate", whole[: len(whole) // 2]))
            elif kind == "stall":
                subscription.released.clear()
                subscription.push(STALL)
            else:
                subscription.push(self._malformed_frame(subscription.kind, variant))
        return len(targets)

    def _sample_event(self, kind: StreamKind) -> dict[str, Any]:
        ext = self.tenant.extension_list[0]
        if kind == "states":
            return self.tenant.state_event(ext)
        if kind == "originate":
            return {"uuid": new_uuid(), "state": "caller-dial", "updated": rfc3339(time.time_ns())}
        return {
            "uuid": new_uuid(),
            "state": "ring",
            "caller": "4930123456",
            "caller_context": "global",
            "callee": ext.number,
            "callee_context": self.tenant.account,
            "direction": "inbound",
            "extension": ext.number,
            "customer": self.tenant.account,
            "updated": self.tenant.stamp(),
        }

    def _sample_frame(self, kind: StreamKind) -> bytes:
        return frame(self._sample_event(kind))

    def _malformed_frame(self, kind: StreamKind, variant: str) -> bytes:
        event = self._sample_event(kind)
        if variant == "broken_json":
            text = json.dumps(event)
            return b"data: " + text[: len(text) // 2].encode() + b"\n\n"
        if variant == "unknown_fields":
            event.update({"x_trace": new_uuid(), "device": {"id": 7, "model": "Yealink T54W"}})
            return frame(event)
        # missing_fields: keep only what identifies nothing, so the client must not guess.
        return frame({k: v for k, v in event.items() if k in ("customer", "presence", "uuid")})

    def clear(self) -> None:
        self.injected = Injected()
        for kind in STREAM_KINDS:
            for subscription in self.tenant.subscribers[kind]:
                subscription.released.set()

    def add_http_fault(self, status: int, endpoint: str, count: int) -> None:
        self.injected.http_errors.append(HttpFault(status, endpoint, count))

    def set_delay(self, seconds: float, endpoint: str, count: int | None) -> None:
        self.injected.delay, self.injected.delay_endpoint = seconds, endpoint
        self.injected.delay_remaining = count

    def take_http_fault(self, method: str, path: str) -> int | None:
        """The status to answer this request with instead, if an injected error applies."""
        for fault in self.injected.http_errors:
            if _endpoint_matches(fault.endpoint, method, path):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.injected.http_errors.remove(fault)
                return fault.status
        return None

    def take_delay(self, method: str, path: str) -> float:
        faults = self.injected
        if not faults.delay or not _endpoint_matches(faults.delay_endpoint, method, path):
            return 0.0
        delay = faults.delay
        if faults.delay_remaining is not None:
            faults.delay_remaining -= 1
            if faults.delay_remaining <= 0:
                faults.delay, faults.delay_remaining = 0.0, None
        return delay

    def take_unauthorized(self) -> bool:
        if self.injected.unauthorized_once:
            self.injected.unauthorized_once = False
            return True
        return False
