"""The simulated NFON PBX as a pure asyncio domain model: tenants, extensions, calls, streams.

Nothing here speaks HTTP. Every timed step (ringing, talking, the click-to-dial state machine,
generated traffic) runs on one discrete-event ``Scheduler`` shared by all tenants, so a
``Simulator`` either runs in real time (``run()``) or is stepped instantly (``advance()``), and
the same seed gives the same events in the same order.
"""

import asyncio
import heapq
import itertools
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any, Literal

from ctiboard.simulator.names import generate_directory
from ctiboard.simulator.tokens import TokenIssuer
from ctiboard.simulator.traffic import TrafficGenerator

logger = logging.getLogger("ctiboard.simulator")

# Line states of the spec, plus the real-traffic `busy` the line_busy oddity uses.
IDLE, RINGING, IN_USE, OFFLINE, LINE_BUSY = "idle", "ringing", "in-use", "offline", "busy"
PRESENCES = ("available", "away", "busy", "dnd", "offline")
CALL_ERRORS = ("timeout", "busy", "cancel", "reject", "unspecified")
PHONE_MODES = ("answer", "never", "reject", "busy", "offline")
PhoneMode = Literal["answer", "never", "reject", "busy", "offline"]
StreamKind = Literal["states", "calls", "originate"]
STREAM_KINDS: tuple[StreamKind, ...] = ("states", "calls", "originate")

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

# A client this far behind has lost the plot; its stream is closed so it reconnects and
# re-bootstraps instead of the simulator buffering without bound.
MAX_BACKLOG = 10_000

# Bounds that keep one tenant's settings from starving the shared event loop.
MAX_TRAFFIC_RATE = 1000.0  # actions per second
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


# --- scheduling ---------------------------------------------------------------------------


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


# --- streams ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Directive:
    """A stream instruction queued behind the events already pending for that stream."""

    action: Literal["close", "truncate", "stall"]
    payload: bytes = b""  # truncate: the partial frame to send before closing


CLOSE = Directive("close")
STALL = Directive("stall")
StreamItem = bytes | Directive


class Subscription:
    """One open SSE stream's queue: pre-serialised frames and directives."""

    __slots__ = ("_group", "kind", "overflowed", "queue", "released")

    def __init__(self, group: set["Subscription"], kind: StreamKind) -> None:
        self._group = group
        self.kind = kind
        self.queue: asyncio.Queue[StreamItem] = asyncio.Queue()
        self.released = asyncio.Event()  # set to end a stall
        self.overflowed = False
        group.add(self)

    def push(self, item: StreamItem) -> None:
        if self.overflowed:
            return
        if self.queue.qsize() >= MAX_BACKLOG:
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(CLOSE)
            logger.warning("closing a %s stream that fell %d events behind", self.kind, MAX_BACKLOG)
            return
        self.queue.put_nowait(item)

    def close(self) -> None:
        self._group.discard(self)


# --- model --------------------------------------------------------------------------------


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
class HttpFault:
    status: int
    endpoint: str  # "*", "/path" (any method) or "METHOD /path", paths as in the spec
    remaining: int


@dataclass(slots=True)
class Faults:
    http_errors: list[HttpFault] = field(default_factory=list)
    delay: float = 0.0
    delay_endpoint: str = "*"
    delay_remaining: int | None = None  # None: every matching request until cleared
    unauthorized_once: bool = False

    def describe(self) -> dict[str, Any]:
        return asdict(self)


def _endpoint_matches(pattern: str, method: str, path: str) -> bool:
    return pattern in ("*", path, f"{method} {path}")


@dataclass(slots=True)
class Counters:
    requests: int = 0
    non_conforming_user_agents: int = 0
    events_sent: int = 0
    streams_opened: int = 0


MALFORMED_VARIANTS = ("broken_json", "unknown_fields", "missing_fields")
STREAM_FAULTS = ("drop", "truncate", "unauthorized", "stall", "malformed")


class SimTenant:
    """One K-Account: its extensions, calls, stream subscribers, faults and traffic."""

    def __init__(
        self,
        simulator: "Simulator",
        *,
        account: str,
        username: str,
        password: str,
        directory: Sequence[tuple[str, str]],
        seed: int | str,
        traffic_rate: float,
        time_scale: float,
        token_ttl: float,
        refresh_ttl: float,
        keepalive: float,
        extended_presence: bool,
    ) -> None:
        self.simulator = simulator
        self.account = account
        self.username = username
        self.password = password
        self.seed = seed
        self.time_scale = time_scale
        self.token_ttl = token_ttl
        self.refresh_ttl = refresh_ttl
        self.keepalive = keepalive
        self.extended_presence = extended_presence
        self.closed = False
        self.oddities = Oddities()
        self._stamps = 0
        self.faults = Faults()
        self.counters = Counters()
        self.remote_behaviours: dict[str, PhoneBehaviour] = {}
        self.calls: dict[str, Call] = {}  # by every leg uuid and the call uuid
        self.subscribers: dict[StreamKind, set[Subscription]] = {k: set() for k in STREAM_KINDS}
        # Separate streams of randomness: the directory must not shift the traffic sequence.
        directory_rng = random.Random(f"{seed}/directory")
        now = time.time_ns()
        self.extensions: dict[str, Extension] = {}
        for number, name in directory:
            presence = directory_rng.choices(PRESENCES, weights=(70, 12, 6, 4, 8))[0]
            online = directory_rng.random() >= 0.04
            if not extended_presence and presence != "offline":
                presence = "available"
            self.extensions[number] = Extension(number, name, presence, online, now)
        self.extension_list = list(self.extensions.values())
        self.traffic = TrafficGenerator(self, random.Random(f"{seed}/traffic"), traffic_rate)

    # -- timing -------------------------------------------------------------------------------

    def later(self, seconds: float, callback: Callable[..., None], *args: Any) -> Timer:
        """Run ``callback`` after ``seconds`` of simulated time (scaled by time_scale)."""
        return self.simulator.scheduler.call_later(
            seconds * self.time_scale, self._if_open, callback, args
        )

    def _if_open(self, callback: Callable[..., None], args: tuple[Any, ...]) -> None:
        if not self.closed:
            callback(*args)

    def _call_later(self, call: Call, seconds: float, callback: Callable[..., None]) -> None:
        call.timers.append(self.later(seconds, callback, call))

    # -- lookups ------------------------------------------------------------------------------

    def extension(self, number: str) -> Extension:
        try:
            return self.extensions[number]
        except KeyError:
            raise NotFound(f"extension {number} not found") from None

    def call(self, call_uuid: str) -> Call:
        try:
            return self.calls[call_uuid]
        except KeyError:
            raise NotFound(f"call {call_uuid} not found") from None

    def active_calls(self) -> list[Call]:
        return list({id(call): call for call in self.calls.values()}.values())

    # -- states -------------------------------------------------------------------------------

    def stamp(self, ns: int | None = None) -> str:
        """An event's `updated`, in the form(s) the tenant's oddities ask for."""
        ns = time.time_ns() if ns is None else ns
        if self.oddities.mixed_timestamps:
            self._stamps += 1
            if self._stamps % 2:
                return rfc3339_millis_utc(ns)
        return rfc3339(ns)

    def state_event(self, ext: Extension) -> dict[str, Any]:
        return {
            "extension": ext.number,
            "customer": self.account,
            "presence": ext.presence,
            "line": ext.line,
            "updated": self.stamp(ext.updated_ns),
        }

    def states(self, numbers: Collection[str] | None = None) -> list[dict[str, Any]]:
        if numbers is None:
            return [self.state_event(ext) for ext in self.extension_list]
        wanted = set(numbers)
        return [self.state_event(ext) for ext in self.extension_list if ext.number in wanted]

    def extension_data(self) -> list[dict[str, str]]:
        return [
            {
                "uuid": f"{ext.number}@{self.account}",
                "extension_number": ext.number,
                "name": ext.name,
            }
            for ext in self.extension_list
        ]

    def _publish_state(self, ext: Extension) -> None:
        ext.updated_ns = time.time_ns()
        subscribers = self.subscribers["states"]
        if subscribers:  # serialise only when someone listens: most tenants have no client
            data = frame(self.state_event(ext))
            for subscription in subscribers:
                subscription.push(data)

    def set_state(
        self, number: str, *, line: str | None = None, presence: str | None = None
    ) -> None:
        """Overwrite what the API reports; calls and the generator may change it again."""
        ext = self.extension(number)
        if line is not None:
            ext.line = line
        if presence is not None:
            ext.presence = presence
        self._publish_state(ext)

    def set_presence(self, ext: Extension, presence: str) -> None:
        if ext.presence != presence:
            ext.presence = presence
            self._publish_state(ext)

    def set_online(self, ext: Extension, online: bool) -> None:
        ext.online = online
        self._refresh_line(ext)

    def set_behaviour(self, number: str, behaviour: PhoneBehaviour) -> None:
        """Configure a phone; this also registers it again if the generator took it offline,
        so the configured behaviour alone decides whether it is reachable."""
        ext = self.extension(number)
        ext.behaviour = behaviour
        ext.online = True
        self._refresh_line(ext)

    def set_remote_behaviour(self, number: str, behaviour: PhoneBehaviour) -> None:
        self.remote_behaviours[number] = behaviour

    def reachable(self, ext: Extension) -> bool:
        return ext.online and ext.behaviour.mode != "offline"

    def _refresh_line(self, ext: Extension) -> None:
        if not self.reachable(ext):
            line = OFFLINE
        elif any(leg.phase in (CONNECTED, DIALING) for leg in ext.legs):
            line = LINE_BUSY if self.oddities.line_busy else IN_USE
        elif any(leg.phase == LEG_RINGING for leg in ext.legs):
            line = RINGING
        else:
            line = IDLE
        if line != ext.line:
            ext.line = line
            self._publish_state(ext)

    def _effective(self, ext: Extension, own: Leg | None = None) -> PhoneBehaviour:
        """How the phone responds now: a leg other than ``own`` makes it busy."""
        if not self.reachable(ext):
            return replace(ext.behaviour, mode="offline")
        if any(leg is not own for leg in ext.legs):
            return replace(ext.behaviour, mode="busy")
        return ext.behaviour

    # -- call events --------------------------------------------------------------------------

    def _leg_event(self, call: Call, leg: Leg, state: str, error: str | None = None) -> None:
        subscribers = self.subscribers["calls"]
        if not subscribers:
            return
        event = {
            "uuid": leg.uuid,
            "state": state,
            "caller": call.caller,
            "caller_context": call.caller_context,
            "callee": call.callee,
            "callee_context": call.callee_context,
            "direction": leg.direction,
            "extension": leg.extension.number,
            "customer": self.account,
            "updated": self.stamp(),
        }
        # The spec's `error` ("set in case of error") on the leg that failed: a hangup of a
        # rejected leg says so, instead of looking like a call nobody answered.
        if error:
            event["error"] = error
        data = frame(event)
        for subscription in subscribers:
            subscription.push(data)

    def _add_leg(
        self, call: Call, ext: Extension, direction: str, phase: str, leg_uuid: str
    ) -> Leg:
        leg = Leg(leg_uuid, ext, direction, phase)
        call.legs.append(leg)
        ext.legs += (leg,)
        self.calls[leg_uuid] = call
        return leg

    def _set_phase(self, call: Call, leg: Leg, phase: str, state: str) -> None:
        leg.phase = phase
        self._leg_event(call, leg, state)
        self._refresh_line(leg.extension)

    def _drop_leg(self, call: Call, leg: Leg, error: str | None = None) -> None:
        call.legs.remove(leg)
        leg.extension.legs = tuple(other for other in leg.extension.legs if other is not leg)
        if self.calls.get(leg.uuid) is call and not any(
            other.uuid == leg.uuid for other in call.legs
        ):
            del self.calls[leg.uuid]
        self._leg_event(call, leg, "hangup", error)
        self._refresh_line(leg.extension)

    def _connect(self, call: Call, leg: Leg) -> None:
        self._set_phase(call, leg, CONNECTED, "answer")
        if self.oddities.bridge:
            self._leg_event(call, leg, "bridge")

    def _finish(self, call: Call, error: str | None = None) -> None:
        """End the call; ``error`` goes on the hangup of every leg that was not connected."""
        for timer in call.timers:
            timer.cancel()
        call.timers.clear()
        for leg in list(call.legs):
            self._drop_leg(call, leg, error if leg.phase != CONNECTED else None)
        if self.calls.get(call.uuid) is call:
            del self.calls[call.uuid]

    # -- scripted and generated calls ---------------------------------------------------------

    def ring(
        self, caller: str, extensions: Sequence[str], *, ids: Callable[[], str] = new_uuid
    ) -> Call:
        """Ring ``extensions`` from ``caller``: an internal call if the caller is an extension,
        else an external inbound call. Several extensions share the call's uuid (a hunt group)."""
        if not extensions:
            raise SimError("at least one extension must ring")
        targets = [self.extension(number) for number in extensions]
        if len({ext.number for ext in targets}) != len(targets):
            raise SimError("extensions must be distinct")
        caller_ext = self.extensions.get(caller)
        if caller_ext is not None and caller_ext in targets:
            raise SimError("an extension cannot call itself")
        call_uuid = ids()
        if caller_ext is not None:
            call = Call(
                call_uuid, "internal", caller, self.account, targets[0].number, self.account
            )
            caller_leg = self._add_leg(call, caller_ext, "outbound", DIALING, call_uuid)
            self._set_phase(call, caller_leg, DIALING, "dial")
        else:
            call = Call(call_uuid, "inbound", caller, "global", targets[0].number, self.account)
            caller_leg = None
        self.calls[call_uuid] = call
        for ext in targets:
            # Internal legs are separate calls for each phone; external hunt-group legs are not.
            leg_uuid = ids() if caller_leg is not None else call_uuid
            leg = self._add_leg(call, ext, "inbound", LEG_RINGING, leg_uuid)
            self._set_phase(call, leg, LEG_RINGING, "ring")
        if caller_leg is not None:
            self._leg_event(call, caller_leg, "ring")
        return call

    def dial_out(self, number: str, remote: str, *, ids: Callable[[], str] = new_uuid) -> Call:
        """An extension calls an external number; the far end is driven by ``remote_ringing``,
        ``answer`` and ``hangup``."""
        ext = self.extension(number)
        call = Call(ids(), "outbound", ext.number, self.account, remote, "global")
        self.calls[call.uuid] = call
        leg = self._add_leg(call, ext, "outbound", DIALING, call.uuid)
        self._set_phase(call, leg, DIALING, "dial")
        return call

    def remote_ringing(self, call: Call) -> None:
        for leg in call.legs:
            if leg.phase == DIALING:
                self._leg_event(call, leg, "ring")

    def answer(self, call_uuid: str, extension: str | None = None) -> Call:
        call = self.call(call_uuid)
        if isinstance(call, Originate):
            raise Conflict("click-to-dial calls follow the phones' behaviour")
        ringing = [leg for leg in call.legs if leg.phase == LEG_RINGING]
        dialing = [leg for leg in call.legs if leg.phase == DIALING]
        if ringing:
            chosen = ringing[0]
            if extension is not None:
                matches = [leg for leg in ringing if leg.extension.number == extension]
                if not matches:
                    raise Conflict(f"extension {extension} is not ringing in call {call_uuid}")
                chosen = matches[0]
            for leg in ringing:
                if leg is not chosen:
                    self._drop_leg(call, leg)
            self._connect(call, chosen)
        elif not dialing or call.answered:
            raise Conflict(f"call {call_uuid} is not ringing")
        for leg in dialing:
            self._connect(call, leg)
        call.answered = True
        return call

    def reject(self, call_uuid: str) -> None:
        call = self.call(call_uuid)
        if call.answered:
            raise Conflict(f"call {call_uuid} is already answered")
        if isinstance(call, Originate):
            self.cancel(call.uuid)
        else:
            self._finish(call, error="reject")

    def hangup(self, call_uuid: str) -> None:
        call = self.call(call_uuid)
        if isinstance(call, Originate):
            self.cancel(call.uuid)  # the uuid may be the callee leg's
        else:
            self._finish(call)

    # -- click-to-dial ------------------------------------------------------------------------

    def originate(self, request: OriginateRequest) -> Originate:
        caller_ext = callee_ext = None
        if request.caller_context == self.account:
            caller_ext = self.extension(request.caller)
        if request.callee_context == self.account:
            callee_ext = self.extension(request.callee)
        # The extension the call is made on behalf of: the override, else an internal caller.
        leg_ext = self.extension(request.extension) if request.extension else caller_ext
        call = Originate(new_uuid(), request)
        call.caller_extension = caller_ext
        call.callee_extension = callee_ext
        call.start_event = {
            "uuid": call.uuid,
            "caller": call.caller,
            "caller_context": call.caller_context,
            "callee": call.callee,
            "callee_context": call.callee_context,
            "direction": "outbound",
            "state": "start",
            "updated": self.stamp(),
        }
        self.calls[call.uuid] = call
        if leg_ext is not None:
            call.start_event["extension"] = leg_ext.number
            call.caller_leg = self._add_leg(call, leg_ext, "outbound", SETUP, call.uuid)
        self._call_later(call, PBX_STEP, self._caller_dial)
        return call

    def watch(self, call: Originate) -> Subscription:
        """Subscribe to the progress events after ``start`` (the POST's own SSE stream)."""
        subscription = Subscription(self.subscribers["originate"], "originate")
        call.watchers.add(subscription)
        if call.ended:
            subscription.push(CLOSE)
        return subscription

    def _progress(self, call: Originate, state: str, error: str | None = None) -> None:
        event: dict[str, Any] = {
            "uuid": call.uuid,
            "state": state,
            "updated": self.stamp(),
        }
        if error is not None:
            event["error"] = error
        data = frame(event)
        for subscription in call.watchers:
            subscription.push(data)
            if state == "end":
                subscription.push(CLOSE)

    def _caller_dial(self, call: Originate) -> None:
        # Busy or not is decided when the PBX dials the phone, not when the request came in.
        call.caller_behaviour = (
            self._effective(call.caller_extension, call.caller_leg)
            if call.caller_extension is not None
            else self.remote_behaviours.get(call.caller, DEFAULT_REMOTE)
        )
        self._progress(call, "caller-dial")
        if call.caller_leg is not None:
            self._leg_event(call, call.caller_leg, "caller-dial")
        call.timeout_timer = self.later(call.timeout, self._fail, call, "timeout")
        call.timers.append(call.timeout_timer)
        self._approach(call, call.caller_behaviour, self._caller_ring, self._caller_answer, None)

    def _approach(
        self,
        call: Originate,
        behaviour: PhoneBehaviour,
        on_ring: Callable[[Originate], None],
        on_answer: Callable[[Originate], None],
        ring_limit: float | None,
    ) -> None:
        """Schedule how a dialled party responds, per its behaviour."""
        mode = behaviour.mode
        if mode in ("offline", "busy"):
            error = "unspecified" if mode == "offline" else "busy"
            call.timers.append(self.later(UNREACHABLE_AFTER, self._fail, call, error))
            return
        if mode == "answer" and behaviour.answer_after == 0:
            self._call_later(call, DEVICE_RESPONSE, on_answer)
            return
        self._call_later(call, DEVICE_RESPONSE, on_ring)
        if mode == "reject":
            call.timers.append(
                self.later(DEVICE_RESPONSE + REJECT_AFTER, self._fail, call, "reject")
            )
        elif mode == "answer":
            self._call_later(call, DEVICE_RESPONSE + behaviour.answer_after, on_answer)
        if ring_limit is not None:
            call.timers.append(
                self.later(DEVICE_RESPONSE + ring_limit, self._fail, call, "timeout")
            )

    def _caller_ring(self, call: Originate) -> None:
        self._progress(call, "caller-ring")
        if call.caller_leg is not None:
            self._set_phase(call, call.caller_leg, LEG_RINGING, "caller-ring")

    def _caller_answer(self, call: Originate) -> None:
        if call.timeout_timer is not None:
            call.timeout_timer.cancel()
        self._progress(call, "caller-answer")
        if call.caller_leg is not None:
            self._set_phase(call, call.caller_leg, CONNECTED, "caller-answer")
        self._call_later(call, PBX_STEP, self._dial)

    def _dial(self, call: Originate) -> None:
        self._progress(call, "dial")
        if self.oddities.late_dial and call.caller_leg is not None:
            self._leg_event(call, call.caller_leg, "dial")
        callee_ext = call.callee_extension
        if callee_ext is not None:
            call.callee_behaviour = self._effective(callee_ext)
        elif call.callee_context == "conference":
            call.callee_behaviour = CONFERENCE
        else:
            call.callee_behaviour = self.remote_behaviours.get(call.callee, DEFAULT_REMOTE)
        self._approach(call, call.callee_behaviour, self._ring, self._answer, CALLEE_RING_LIMIT)

    def _callee_leg(self, call: Originate) -> Leg | None:
        if call.callee_extension is None:
            return None
        for leg in call.legs:
            if leg is not call.caller_leg:
                return leg
        return self._add_leg(call, call.callee_extension, "inbound", SETUP, new_uuid())

    def _ring(self, call: Originate) -> None:
        self._progress(call, "ring")
        if self.oddities.late_dial and call.caller_leg is not None:
            self._leg_event(call, call.caller_leg, "ring")
        leg = self._callee_leg(call)
        if leg is not None:
            self._set_phase(call, leg, LEG_RINGING, "ring")

    def _answer(self, call: Originate) -> None:
        for timer in call.timers:
            timer.cancel()
        call.timers.clear()
        self._progress(call, "answer")
        leg = self._callee_leg(call)
        if leg is not None:
            self._connect(call, leg)
        if call.caller_leg is not None:
            self._leg_event(call, call.caller_leg, "answer")
            if self.oddities.bridge:
                self._leg_event(call, call.caller_leg, "bridge")
        call.answered = True
        # `end` follows `answer` at once: the request is done, the call goes on without it.
        self._end(call, None)
        talk = [
            b.hangup_after
            for b in (call.caller_behaviour, call.callee_behaviour)
            if b.hangup_after is not None
        ]
        if talk:
            call.timers.append(self.later(min(talk), self._finish, call))

    def _end(self, call: Originate, error: str | None) -> None:
        if not call.ended:
            call.ended = True
            self._progress(call, "end", error)
            call.watchers.clear()

    def _fail(self, call: Originate, error: str) -> None:
        self._end(call, error)
        self._finish(call)

    def cancel(self, call_uuid: str) -> None:
        """DELETE: cancel a click-to-dial in progress, or hang it up once established."""
        call = self.calls.get(call_uuid)
        if not isinstance(call, Originate) or call.uuid != call_uuid:
            raise NotFound(f"call {call_uuid} not found")
        if call.ended:
            self._finish(call)
        else:
            self._fail(call, "cancel")

    # -- streams ------------------------------------------------------------------------------

    def subscribe(self, kind: Literal["states", "calls"]) -> Subscription:
        self.counters.streams_opened += 1
        return Subscription(self.subscribers[kind], kind)

    def open_streams(self) -> dict[str, int]:
        return {kind: len(subscribers) for kind, subscribers in self.subscribers.items()}

    def _targets(self, stream: str) -> list[Subscription]:
        if stream == "all":
            return [s for kind in STREAM_KINDS for s in self.subscribers[kind]]
        if stream not in STREAM_KINDS:
            raise SimError(f"stream must be all or one of {', '.join(STREAM_KINDS)}")
        return list(self.subscribers[stream])  # type: ignore[index]

    def inject_stream_fault(self, kind: str, stream: str = "all", variant: str = "") -> int:
        """Apply a fault to the open streams; returns how many streams it reached."""
        if kind not in STREAM_FAULTS:
            raise SimError(f"stream fault must be one of {', '.join(STREAM_FAULTS)}")
        if kind == "malformed" and variant not in MALFORMED_VARIANTS:
            raise SimError(f"variant must be one of {', '.join(MALFORMED_VARIANTS)}")
        targets = self._targets(stream)
        if kind == "unauthorized":
            self.faults.unauthorized_once = True
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
        ext = self.extension_list[0]
        if kind == "states":
            return self.state_event(ext)
        if kind == "originate":
            return {"uuid": new_uuid(), "state": "caller-dial", "updated": rfc3339(time.time_ns())}
        return {
            "uuid": new_uuid(),
            "state": "ring",
            "caller": "4930123456",
            "caller_context": "global",
            "callee": ext.number,
            "callee_context": self.account,
            "direction": "inbound",
            "extension": ext.number,
            "customer": self.account,
            "updated": self.stamp(),
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

    def clear_faults(self) -> None:
        self.faults = Faults()
        for kind in STREAM_KINDS:
            for subscription in self.subscribers[kind]:
                subscription.released.set()

    def add_http_fault(self, status: int, endpoint: str, count: int) -> None:
        self.faults.http_errors.append(HttpFault(status, endpoint, count))

    def set_delay(self, seconds: float, endpoint: str, count: int | None) -> None:
        self.faults.delay, self.faults.delay_endpoint = seconds, endpoint
        self.faults.delay_remaining = count

    def take_http_fault(self, method: str, path: str) -> int | None:
        """The status to answer this request with instead, if an injected error applies."""
        for fault in self.faults.http_errors:
            if _endpoint_matches(fault.endpoint, method, path):
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self.faults.http_errors.remove(fault)
                return fault.status
        return None

    def take_delay(self, method: str, path: str) -> float:
        faults = self.faults
        if not faults.delay or not _endpoint_matches(faults.delay_endpoint, method, path):
            return 0.0
        delay = faults.delay
        if faults.delay_remaining is not None:
            faults.delay_remaining -= 1
            if faults.delay_remaining <= 0:
                faults.delay, faults.delay_remaining = 0.0, None
        return delay

    def take_unauthorized(self) -> bool:
        if self.faults.unauthorized_once:
            self.faults.unauthorized_once = False
            return True
        return False

    # -- lifecycle ----------------------------------------------------------------------------

    SETTINGS = ("time_scale", "token_ttl", "refresh_ttl", "keepalive")

    def update_settings(self, **settings: float) -> None:
        for name, value in settings.items():
            if name not in self.SETTINGS:
                raise SimError(f"unknown setting {name}")
            check_setting(name, value)
            setattr(self, name, value)

    def set_traffic_rate(self, rate: float) -> None:
        check_setting("traffic_rate", rate)
        self.traffic.set_rate(rate)

    def close(self) -> None:
        self.closed = True
        self.traffic.pause()
        for call in self.active_calls():
            for timer in call.timers:
                timer.cancel()
        self.calls.clear()
        for kind in STREAM_KINDS:
            for subscription in self.subscribers[kind]:
                subscription.released.set()  # a stalled stream must still see the close
                subscription.push(CLOSE)

    def describe(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "username": self.username,
            "extensions": len(self.extension_list),
            "seed": self.seed,
            "time_scale": self.time_scale,
            "token_ttl": self.token_ttl,
            "refresh_ttl": self.refresh_ttl,
            "keepalive": self.keepalive,
            "extended_presence": self.extended_presence,
            "traffic": self.traffic.describe(),
            "oddities": asdict(self.oddities),
            "active_calls": len(self.active_calls()),
        }

    def counters_snapshot(self) -> dict[str, Any]:
        return {
            **asdict(self.counters),
            "open_streams": self.open_streams(),
            "traffic_actions": self.traffic.actions,
        }

    def set_oddities(self, **flags: bool) -> None:
        known = {f.name for f in fields(Oddities)}
        for name, value in flags.items():
            if name not in known:
                raise SimError(f"unknown oddity {name}; known: {', '.join(sorted(known))}")
            setattr(self.oddities, name, value)


def check_setting(name: str, value: float) -> None:
    """Raise SimError unless ``value`` is valid for the tenant setting ``name``."""
    if name == "traffic_rate":
        if not 0 <= value <= MAX_TRAFFIC_RATE:
            raise SimError(f"traffic_rate must be between 0 and {MAX_TRAFFIC_RATE:g}")
    elif name == "keepalive":
        if not MIN_KEEPALIVE <= value < float("inf"):
            raise SimError(f"keepalive must be at least {MIN_KEEPALIVE} seconds")
    elif not 0 < value < float("inf"):
        raise SimError(f"{name} must be positive")


class TenantExists(Conflict):
    pass


class Simulator:
    """Any number of simulated NFON tenants on one clock, with one token signing key."""

    def __init__(self, *, seed: int = 0, keepalive: float = 15.0) -> None:
        self.seed = seed
        self.keepalive = keepalive
        self.scheduler = Scheduler()
        self.tokens = TokenIssuer()
        self.tenants: dict[str, SimTenant] = {}
        self._by_username: dict[str, SimTenant] = {}
        # Non-conforming User-Agents on requests that name no tenant (bad login, JWKS).
        self.unattributed_non_conforming = 0

    def add_tenant(
        self,
        *,
        account: str,
        username: str,
        password: str,
        extensions: int | Sequence[tuple[str, str]] = 10,
        seed: int | None = None,
        traffic_rate: float = 0.0,
        time_scale: float = 1.0,
        token_ttl: float = 300.0,
        refresh_ttl: float = 3600.0,
        keepalive: float | None = None,
        extended_presence: bool = True,
        oddities: Mapping[str, bool] | None = None,
    ) -> SimTenant:
        if not ACCOUNT.match(account):
            raise SimError("account must look like K1234")
        if not username or not password:
            raise SimError("username and password must not be empty")
        if account in self.tenants:
            raise TenantExists(f"tenant {account} exists")
        if username in self._by_username:
            raise TenantExists(f"username {username} is taken")
        check_setting("time_scale", time_scale)
        check_setting("token_ttl", token_ttl)
        check_setting("refresh_ttl", refresh_ttl)
        check_setting("traffic_rate", traffic_rate)
        if keepalive is not None:
            check_setting("keepalive", keepalive)
        tenant_seed: int | str = seed if seed is not None else f"{self.seed}/{account}"
        directory = self._directory(extensions, tenant_seed)
        tenant = SimTenant(
            self,
            account=account,
            username=username,
            password=password,
            directory=directory,
            seed=tenant_seed,
            traffic_rate=traffic_rate,
            time_scale=time_scale,
            token_ttl=token_ttl,
            refresh_ttl=refresh_ttl,
            keepalive=keepalive if keepalive is not None else self.keepalive,
            extended_presence=extended_presence,
        )
        tenant.set_oddities(**(oddities or {}))
        self.tenants[account] = tenant
        self._by_username[username] = tenant
        tenant.traffic.start()
        return tenant

    @staticmethod
    def _directory(
        extensions: int | Iterable[tuple[str, str]], seed: int | str
    ) -> list[tuple[str, str]]:
        if isinstance(extensions, int):
            if not 1 <= extensions <= 100_000:
                raise SimError("extensions must be between 1 and 100000")
            return generate_directory(extensions, random.Random(f"{seed}/names"))
        directory = [(str(number), str(name)) for number, name in extensions]
        numbers = [number for number, _ in directory]
        if not directory:
            raise SimError("a tenant needs at least one extension")
        if any(not EXTENSION_NUMBER.match(number) for number in numbers):
            raise SimError("extension numbers must be 1 to 16 digits")
        if len(set(numbers)) != len(numbers):
            raise SimError("extension numbers must be unique")
        return directory

    def tenant(self, account: str) -> SimTenant:
        try:
            return self.tenants[account]
        except KeyError:
            raise NotFound(f"tenant {account} not found") from None

    def tenant_for_username(self, username: str) -> SimTenant | None:
        return self._by_username.get(username)

    def remove_tenant(self, account: str) -> None:
        tenant = self.tenant(account)
        tenant.close()
        del self.tenants[account]
        del self._by_username[tenant.username]

    async def run(self) -> None:
        """Run every tenant's traffic and timers in real time until cancelled."""
        await self.scheduler.run_realtime()

    def advance(self, seconds: float) -> None:
        """Run everything due within ``seconds`` of simulated time at once (tests, benchmarks)."""
        self.scheduler.advance(seconds)
