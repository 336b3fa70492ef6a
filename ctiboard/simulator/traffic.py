"""Seeded background traffic for one tenant: calls in, out and between extensions, presence
changes, phones dropping off the network and coming back.

Every action draws the same amount of randomness whatever it turns out to do, so one seed gives
one sequence of actions; whether an action finds its extension free depends only on earlier
actions, which the simulator's scheduler replays in the same order.
"""

import math
import random
import uuid
from collections.abc import Callable
from typing import Any

from ctiboard.simulator.clock import Timer
from ctiboard.simulator.model import Call, Extension
from ctiboard.simulator.tenant import TenantState

# Share of each action; the rest of the unit interval is phones going offline.
INBOUND, INTERNAL, OUTBOUND, PRESENCE = 0.35, 0.50, 0.70, 0.92
# German and nearby area codes, written without "+" or "00" as NFON sends them.
AREA_CODES = ("4930", "4940", "4989", "4969", "49221", "49211", "49711", "49351", "43", "41")


class TrafficGenerator:
    """Poisson-timed actions at ``rate`` per real second (0 = off); call durations are in
    simulated seconds and follow the tenant's time_scale."""

    def __init__(self, tenant: TenantState, rng: random.Random, rate: float) -> None:
        self.tenant = tenant
        self.rng = rng
        self.rate = rate
        self.paused = False
        self.actions = 0
        self._timer: Timer | None = None

    def describe(self) -> dict[str, Any]:
        return {"rate": self.rate, "paused": self.paused, "actions": self.actions}

    def start(self) -> None:
        self._schedule()

    def pause(self) -> None:
        self.paused = True
        self._schedule()

    def resume(self) -> None:
        self.paused = False
        self._schedule()

    def set_rate(self, rate: float) -> None:
        """``rate`` as checked by SimTenant.set_traffic_rate."""
        self.rate = rate
        self._schedule()

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.paused or self.rate <= 0 or self.tenant.closed:
            return
        delay = self.rng.expovariate(self.rate)
        self._timer = self.tenant.scheduler.call_later(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        if self.tenant.closed:
            return
        self.actions += 1
        rng = self.rng
        extensions = self.tenant.extension_list
        roll = rng.random()
        first, second, third = (rng.choice(extensions) for _ in range(3))
        remote = rng.choice(AREA_CODES) + str(rng.randrange(100_000, 99_999_999))
        ring_time = rng.uniform(2.0, 12.0)
        talk_time = min(max(rng.lognormvariate(math.log(45.0), 0.9), 5.0), 1800.0)
        answered = rng.random() < 0.8
        hunt_size = rng.choice((2, 3))
        presence = rng.choices(("available", "away", "busy", "dnd", "offline"), (5, 3, 2, 1, 1))[0]
        offline_for = rng.uniform(30.0, 600.0)
        leg_ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(4)]
        ids = iter(leg_ids).__next__

        if roll < INBOUND:
            targets = [first, second, third][: hunt_size if self.tenant.oddities.hunt_group else 1]
            self._inbound(remote, targets, ids, ring_time, talk_time, answered)
        elif roll < INTERNAL:
            self._internal(first, second, ids, ring_time, talk_time, answered)
        elif roll < OUTBOUND:
            self._outbound(first, remote, ids, ring_time, talk_time, answered)
        elif roll < PRESENCE:
            if not self.tenant.extended_presence:
                # Without the extended-presence licence NFON only reports these two.
                presence = "offline" if presence == "offline" else "available"
            self.tenant.set_presence(first, presence)
        elif self._free(first):
            self.tenant.set_online(first, False)
            self.tenant.later(offline_for, self.tenant.set_online, first, True)
        self._schedule()

    def _free(self, ext: Extension) -> bool:
        return not ext.legs and self.tenant.reachable(ext) and ext.behaviour.mode == "answer"

    def _inbound(
        self,
        remote: str,
        targets: list[Extension],
        ids: Callable[[], str],
        ring_time: float,
        talk_time: float,
        answered: bool,
    ) -> None:
        if len(set(targets)) != len(targets) or not all(self._free(ext) for ext in targets):
            return
        call = self.tenant.ring(remote, [ext.number for ext in targets], ids=ids)
        self._play(call, ring_time, talk_time, answered)

    def _internal(
        self,
        caller: Extension,
        callee: Extension,
        ids: Callable[[], str],
        ring_time: float,
        talk_time: float,
        answered: bool,
    ) -> None:
        if caller is callee or not (self._free(caller) and self._free(callee)):
            return
        call = self.tenant.ring(caller.number, [callee.number], ids=ids)
        self._play(call, ring_time, talk_time, answered)

    def _outbound(
        self,
        caller: Extension,
        remote: str,
        ids: Callable[[], str],
        ring_time: float,
        talk_time: float,
        answered: bool,
    ) -> None:
        if not self._free(caller):
            return
        call = self.tenant.dial_out(caller.number, remote, ids=ids)
        call.timers.append(self.tenant.later(1.5, self._remote_ringing, call))
        self._play(call, ring_time, talk_time, answered)

    def _play(self, call: Call, ring_time: float, talk_time: float, answered: bool) -> None:
        later = self.tenant.later
        if answered:
            call.timers.append(later(ring_time, self._answer, call))
            call.timers.append(later(ring_time + talk_time, self._hangup, call))
        else:
            # Callers of unanswered calls give up after a while.
            call.timers.append(later(ring_time * 2.5, self._hangup, call))

    def _live(self, call: Call) -> bool:
        return self.tenant.calls.get(call.uuid) is call

    def _remote_ringing(self, call: Call) -> None:
        if self._live(call) and not call.answered:
            self.tenant.remote_ringing(call)

    def _answer(self, call: Call) -> None:
        if self._live(call) and not call.answered:
            self.tenant.answer(call.uuid)

    def _hangup(self, call: Call) -> None:
        if self._live(call):
            self.tenant.hangup(call)
