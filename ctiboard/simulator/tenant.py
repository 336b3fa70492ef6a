"""One simulated K-Account's PBX: extensions, their phones and lines, calls and their legs,
and the state and call events its open streams receive. Nothing here speaks HTTP."""

import random
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import fields, replace
from typing import Any, Literal

from ctiboard.simulator.clock import Scheduler, Timer
from ctiboard.simulator.model import (
    CONNECTED,
    DIALING,
    IDLE,
    IN_USE,
    LEG_RINGING,
    LINE_BUSY,
    OFFLINE,
    PRESENCES,
    RINGING,
    Call,
    Conflict,
    Counters,
    Extension,
    Leg,
    NotFound,
    Oddities,
    Originate,
    PhoneBehaviour,
    SimError,
    frame,
    new_uuid,
    rfc3339,
    rfc3339_millis_utc,
)
from ctiboard.simulator.streams import STREAM_KINDS, StreamKind, Subscription


class TenantState:
    """One K-Account's PBX: its extensions and their phones, calls and legs, and the call and
    state events its open streams receive."""

    def __init__(
        self,
        scheduler: Scheduler,
        *,
        account: str,
        username: str,
        password: str,
        directory: Sequence[tuple[str, str]],
        seed: int | str,
        time_scale: float,
        token_ttl: float,
        refresh_ttl: float,
        keepalive: float,
        extended_presence: bool,
    ) -> None:
        self.scheduler = scheduler
        self.account = account
        self.username = username
        self.password = password
        self.seed = seed
        self.time_scale = time_scale
        self.token_ttl = token_ttl
        # Seconds this PBX's clock is off the true time: its tokens' iat and exp say so.
        self.clock_skew = 0.0
        self.refresh_ttl = refresh_ttl
        self.keepalive = keepalive
        self.extended_presence = extended_presence
        self.closed = False
        self.oddities = Oddities()
        self._stamps = 0
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

    # -- timing -------------------------------------------------------------------------------

    def later(self, seconds: float, callback: Callable[..., None], *args: Any) -> Timer:
        """Run ``callback`` after ``seconds`` of simulated time (scaled by time_scale)."""
        return self.scheduler.call_later(seconds * self.time_scale, self._if_open, callback, args)

    def _if_open(self, callback: Callable[..., None], args: tuple[Any, ...]) -> None:
        if not self.closed:
            callback(*args)

    def call_later(self, call: Call, seconds: float, callback: Callable[..., None]) -> None:
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

    def effective(self, ext: Extension, own: Leg | None = None) -> PhoneBehaviour:
        """How the phone responds now: a leg other than ``own`` makes it busy."""
        if not self.reachable(ext):
            return replace(ext.behaviour, mode="offline")
        if any(leg is not own for leg in ext.legs):
            return replace(ext.behaviour, mode="busy")
        return ext.behaviour

    # -- call events --------------------------------------------------------------------------

    def leg_event(self, call: Call, leg: Leg, state: str, error: str | None = None) -> None:
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

    def add_leg(self, call: Call, ext: Extension, direction: str, phase: str, leg_uuid: str) -> Leg:
        leg = Leg(leg_uuid, ext, direction, phase)
        call.legs.append(leg)
        ext.legs += (leg,)
        self.calls[leg_uuid] = call
        return leg

    def set_phase(self, call: Call, leg: Leg, phase: str, state: str) -> None:
        leg.phase = phase
        self.leg_event(call, leg, state)
        self._refresh_line(leg.extension)

    def drop_leg(self, call: Call, leg: Leg, error: str | None = None) -> None:
        call.legs.remove(leg)
        leg.extension.legs = tuple(other for other in leg.extension.legs if other is not leg)
        if self.calls.get(leg.uuid) is call and not any(
            other.uuid == leg.uuid for other in call.legs
        ):
            del self.calls[leg.uuid]
        self.leg_event(call, leg, "hangup", error)
        self._refresh_line(leg.extension)

    def connect(self, call: Call, leg: Leg) -> None:
        self.set_phase(call, leg, CONNECTED, "answer")
        if self.oddities.bridge:
            self.leg_event(call, leg, "bridge")

    def finish(self, call: Call, error: str | None = None) -> None:
        """End the call; ``error`` goes on the hangup of every leg that was not connected."""
        for timer in call.timers:
            timer.cancel()
        call.timers.clear()
        for leg in list(call.legs):
            self.drop_leg(call, leg, error if leg.phase != CONNECTED else None)
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
            caller_leg = self.add_leg(call, caller_ext, "outbound", DIALING, call_uuid)
            self.set_phase(call, caller_leg, DIALING, "dial")
        else:
            call = Call(call_uuid, "inbound", caller, "global", targets[0].number, self.account)
            caller_leg = None
        self.calls[call_uuid] = call
        for ext in targets:
            # Internal legs are separate calls for each phone; external hunt-group legs are not.
            leg_uuid = ids() if caller_leg is not None else call_uuid
            leg = self.add_leg(call, ext, "inbound", LEG_RINGING, leg_uuid)
            self.set_phase(call, leg, LEG_RINGING, "ring")
        if caller_leg is not None:
            self.leg_event(call, caller_leg, "ring")
        return call

    def dial_out(self, number: str, remote: str, *, ids: Callable[[], str] = new_uuid) -> Call:
        """An extension calls an external number; the far end is driven by ``remote_ringing``,
        ``answer`` and ``hangup``."""
        ext = self.extension(number)
        call = Call(ids(), "outbound", ext.number, self.account, remote, "global")
        self.calls[call.uuid] = call
        leg = self.add_leg(call, ext, "outbound", DIALING, call.uuid)
        self.set_phase(call, leg, DIALING, "dial")
        return call

    def remote_ringing(self, call: Call) -> None:
        for leg in call.legs:
            if leg.phase == DIALING:
                self.leg_event(call, leg, "ring")

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
                    self.drop_leg(call, leg)
            self.connect(call, chosen)
        elif not dialing or call.answered:
            raise Conflict(f"call {call_uuid} is not ringing")
        for leg in dialing:
            self.connect(call, leg)
        call.answered = True
        return call

    def reject(self, call: Call) -> None:
        if call.answered:
            raise Conflict(f"call {call.uuid} is already answered")
        self.finish(call, error="reject")

    def hangup(self, call: Call) -> None:
        self.finish(call)

    # -- streams ------------------------------------------------------------------------------

    def subscribe(self, kind: Literal["states", "calls"]) -> Subscription:
        self.counters.streams_opened += 1
        return Subscription(self.subscribers[kind], kind)

    def open_streams(self) -> dict[str, int]:
        return {kind: len(subscribers) for kind, subscribers in self.subscribers.items()}

    def set_oddities(self, **flags: bool) -> None:
        known = {f.name for f in fields(Oddities)}
        for name, value in flags.items():
            if name not in known:
                raise SimError(f"unknown oddity {name}; known: {', '.join(sorted(known))}")
            setattr(self.oddities, name, value)
