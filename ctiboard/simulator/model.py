"""The simulated PBX's vocabulary: states, phones, legs, calls, oddities, and its errors.

Plain data, no behaviour beyond validation and formatting; the tenant (``tenant.py``) and the
click-to-dial state machine (``originate.py``) act on it.
"""

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from ctiboard.simulator.clock import Timer
from ctiboard.simulator.streams import Subscription

# Line states of the spec, plus the real-traffic `busy` the line_busy oddity uses.
IDLE, RINGING, IN_USE, OFFLINE, LINE_BUSY = "idle", "ringing", "in-use", "offline", "busy"
PRESENCES = ("available", "away", "busy", "dnd", "offline")
CALL_ERRORS = ("timeout", "busy", "cancel", "reject", "unspecified")
PHONE_MODES = ("answer", "never", "reject", "busy", "offline")
PhoneMode = Literal["answer", "never", "reject", "busy", "offline"]

# Leg phases; a leg is one extension's (or one remote party's) part of a call.
SETUP, DIALING, LEG_RINGING, CONNECTED = "setup", "dialing", "ringing", "connected"

# Click-to-dial pacing in simulated seconds (multiplied by the tenant's time_scale).
PBX_STEP = 0.1  # between start and caller-dial, and between caller-answer and dial
DEVICE_RESPONSE = 0.3  # a reachable device starts ringing
UNREACHABLE_AFTER = 0.5  # the PBX gives up on an offline or busy device
REJECT_AFTER = 1.0  # a person looks at the ringing phone and rejects
CALLEE_RING_LIMIT = (
    60.0  # the PBX stops ringing an unanswered callee (timeout only bounds the caller)
)
DEFAULT_TIMEOUT = 20
MAX_TIMEOUT = 120


# Bounds that keep one tenant's settings from starving the shared event loop.
MAX_TRAFFIC_RATE = 1000.0  # actions per second
# How far the PBX's clock may be set off the true time (seconds, either way).
MAX_CLOCK_SKEW = 86_400.0
MIN_KEEPALIVE = 0.01  # seconds

EXTENSION_NUMBER = re.compile(r"^\d{1,16}$")
ACCOUNT = re.compile(r"^K[0-9A-Za-z]{1,31}$")


class SimError(Exception):
    """A request the simulator refuses; ``status`` is the HTTP status the API layer answers."""

    status = 400


class NotFound(SimError):
    status = 404


class Conflict(SimError):
    status = 409


def rfc3339(ns: int) -> str:
    """RFC 3339 with nanoseconds and local offset, as NFON: 2025-09-23T16:51:22.954969226+02:00."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds).astimezone()
    offset = moment.strftime("%z")
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanos:09d}{offset[:3]}:{offset[3:]}"


def rfc3339_millis_utc(ns: int) -> str:
    """The spec's other example form: milliseconds in UTC with Z, 2013-10-27T11:01:10.010Z."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{nanos // 1_000_000:03d}Z"


def frame(event: dict[str, Any]) -> bytes:
    """One SSE frame carrying one JSON object."""
    return (
        b"data: " + json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode() + b"\n\n"
    )


def new_uuid() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class PhoneBehaviour:
    """How a simulated phone (or remote party) treats calls."""

    mode: PhoneMode = "answer"
    answer_after: float = 2.0  # seconds of ringing; 0 answers without ringing (auto-answer)
    hangup_after: float | None = 60.0  # seconds of talk before this side hangs up; None: never

    def __post_init__(self) -> None:
        if self.mode not in PHONE_MODES:
            raise SimError(f"mode must be one of {', '.join(PHONE_MODES)}")
        if self.answer_after < 0:
            raise SimError("answer_after must be >= 0")
        if self.hangup_after is not None and self.hangup_after < 0:
            raise SimError("hangup_after must be >= 0 or null")


DEFAULT_PHONE = PhoneBehaviour()
DEFAULT_REMOTE = PhoneBehaviour(answer_after=3.0)
CONFERENCE = PhoneBehaviour(answer_after=0.0, hangup_after=None)


class Extension:
    __slots__ = ("behaviour", "legs", "line", "name", "number", "online", "presence", "updated_ns")

    def __init__(
        self, number: str, name: str, presence: str, online: bool, updated_ns: int
    ) -> None:
        self.number = number
        self.name = name
        self.presence = presence
        self.online = online  # registered device; the generator takes phones offline and back
        self.line = IDLE if online else OFFLINE
        self.updated_ns = updated_ns
        self.behaviour = DEFAULT_PHONE
        # A tuple: the shared empty one costs nothing on the thousands of idle extensions.
        self.legs: tuple[Leg, ...] = ()


class Leg:
    __slots__ = ("direction", "extension", "phase", "uuid")

    def __init__(self, leg_uuid: str, extension: Extension, direction: str, phase: str) -> None:
        self.uuid = leg_uuid
        self.extension = extension
        self.direction = direction
        self.phase = phase


class Call:
    """A call with one leg per involved extension; remote parties have no leg."""

    __slots__ = (
        "answered",
        "callee",
        "callee_context",
        "caller",
        "caller_context",
        "kind",
        "legs",
        "timers",
        "uuid",
    )

    def __init__(
        self,
        call_uuid: str,
        kind: str,
        caller: str,
        caller_context: str,
        callee: str,
        callee_context: str,
    ) -> None:
        self.uuid = call_uuid
        self.kind = kind
        self.caller = caller
        self.caller_context = caller_context
        self.callee = callee
        self.callee_context = callee_context
        self.legs: list[Leg] = []
        self.timers: list[Timer] = []
        self.answered = False

    def describe(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "kind": self.kind,
            "caller": self.caller,
            "callee": self.callee,
            "answered": self.answered,
            "legs": [
                {
                    "uuid": leg.uuid,
                    "extension": leg.extension.number,
                    "direction": leg.direction,
                    "phase": leg.phase,
                }
                for leg in self.legs
            ],
        }


@dataclass(frozen=True, slots=True)
class OriginateRequest:
    """A validated click-to-dial request (contexts already resolved to the K-Account/global)."""

    caller: str
    callee: str
    caller_context: str
    callee_context: str
    extension: str | None = None
    timeout: int = DEFAULT_TIMEOUT


class Originate(Call):
    """Click-to-dial: ring the caller, then the callee, reporting progress until ``end``."""

    __slots__ = (
        "callee_behaviour",
        "callee_extension",
        "caller_behaviour",
        "caller_extension",
        "caller_leg",
        "ended",
        "start_event",
        "timeout",
        "timeout_timer",
        "watchers",
    )

    def __init__(self, call_uuid: str, request: OriginateRequest) -> None:
        super().__init__(
            call_uuid,
            "originate",
            request.caller,
            request.caller_context,
            request.callee,
            request.callee_context,
        )
        self.timeout = request.timeout
        self.timeout_timer: Timer | None = None
        self.ended = False
        self.watchers: set[Subscription] = set()
        self.caller_leg: Leg | None = None
        self.caller_extension: Extension | None = None
        self.callee_extension: Extension | None = None
        self.caller_behaviour = DEFAULT_PHONE
        self.callee_behaviour = DEFAULT_PHONE
        self.start_event: dict[str, Any] = {}


@dataclass(slots=True)
class Oddities:
    """Real-traffic behaviour outside the spec, off by default."""

    line_busy: bool = False  # lines in a call report `busy` instead of `in-use`
    bridge: bool = False  # answered legs also get a `bridge` call event
    late_dial: bool = False  # click-to-dial caller legs get `dial`/`ring` after `caller-answer`
    hunt_group: bool = False  # generated inbound calls ring 2-3 extensions under one uuid
    # `updated` alternates between nanoseconds with offset and milliseconds with Z, as the
    # spec's own examples do.
    mixed_timestamps: bool = False


# Named sets of oddities for `simulate --profile` and `demo --profile`.
PROFILES: dict[str, dict[str, bool]] = {
    "spec": {},
    "realistic": {
        "line_busy": True,
        "bridge": True,
        "late_dial": True,
        "hunt_group": True,
        "mixed_timestamps": True,
    },
}


@dataclass(slots=True)
class Counters:
    requests: int = 0
    non_conforming_user_agents: int = 0
    events_sent: int = 0
    streams_opened: int = 0


def check_setting(name: str, value: float) -> None:
    """Raise SimError unless ``value`` is valid for the tenant setting ``name``."""
    if name == "traffic_rate":
        if not 0 <= value <= MAX_TRAFFIC_RATE:
            raise SimError(f"traffic_rate must be between 0 and {MAX_TRAFFIC_RATE:g}")
    elif name == "clock_skew":
        if not -MAX_CLOCK_SKEW <= value <= MAX_CLOCK_SKEW:
            raise SimError(f"clock_skew must be within ±{MAX_CLOCK_SKEW:g} seconds")
    elif name == "keepalive":
        if not MIN_KEEPALIVE <= value < float("inf"):
            raise SimError(f"keepalive must be at least {MIN_KEEPALIVE} seconds")
    elif not 0 < value < float("inf"):
        raise SimError(f"{name} must be positive")


class TenantExists(Conflict):
    pass
