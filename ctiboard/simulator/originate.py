"""Click-to-dial (POST /extensions/phone/calls): ring the caller's phone, then the callee,
report each step to the request's own stream and to the call stream, until ``end``."""

from collections.abc import Callable
from typing import Any

from ctiboard.simulator.model import (
    CALLEE_RING_LIMIT,
    CONFERENCE,
    CONNECTED,
    DEFAULT_REMOTE,
    DEVICE_RESPONSE,
    LEG_RINGING,
    PBX_STEP,
    REJECT_AFTER,
    SETUP,
    UNREACHABLE_AFTER,
    Leg,
    NotFound,
    Originate,
    OriginateRequest,
    PhoneBehaviour,
    frame,
    new_uuid,
)
from ctiboard.simulator.streams import CLOSE, Subscription
from ctiboard.simulator.tenant import TenantState


class ClickToDial:
    """A tenant's click-to-dial calls, driven by its phones' behaviour on its scheduler."""

    def __init__(self, tenant: TenantState) -> None:
        self.tenant = tenant

    def originate(self, request: OriginateRequest) -> Originate:
        caller_ext = callee_ext = None
        if request.caller_context == self.tenant.account:
            caller_ext = self.tenant.extension(request.caller)
        if request.callee_context == self.tenant.account:
            callee_ext = self.tenant.extension(request.callee)
        # The extension the call is made on behalf of: the override, else an internal caller.
        leg_ext = self.tenant.extension(request.extension) if request.extension else caller_ext
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
            "updated": self.tenant.stamp(),
        }
        self.tenant.calls[call.uuid] = call
        if leg_ext is not None:
            call.start_event["extension"] = leg_ext.number
            call.caller_leg = self.tenant.add_leg(call, leg_ext, "outbound", SETUP, call.uuid)
        self.tenant.call_later(call, PBX_STEP, self._caller_dial)
        return call

    def watch(self, call: Originate) -> Subscription:
        """Subscribe to the progress events after ``start`` (the POST's own SSE stream)."""
        subscription = Subscription(self.tenant.subscribers["originate"], "originate")
        call.watchers.add(subscription)
        if call.ended:
            subscription.push(CLOSE)
        return subscription

    def _progress(self, call: Originate, state: str, error: str | None = None) -> None:
        event: dict[str, Any] = {
            "uuid": call.uuid,
            "state": state,
            "updated": self.tenant.stamp(),
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
            self.tenant.effective(call.caller_extension, call.caller_leg)
            if call.caller_extension is not None
            else self.tenant.remote_behaviours.get(call.caller, DEFAULT_REMOTE)
        )
        self._progress(call, "caller-dial")
        if call.caller_leg is not None:
            self.tenant.leg_event(call, call.caller_leg, "caller-dial")
        call.timeout_timer = self.tenant.later(call.timeout, self._fail, call, "timeout")
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
            call.timers.append(self.tenant.later(UNREACHABLE_AFTER, self._fail, call, error))
            return
        if mode == "answer" and behaviour.answer_after == 0:
            self.tenant.call_later(call, DEVICE_RESPONSE, on_answer)
            return
        self.tenant.call_later(call, DEVICE_RESPONSE, on_ring)
        if mode == "reject":
            call.timers.append(
                self.tenant.later(DEVICE_RESPONSE + REJECT_AFTER, self._fail, call, "reject")
            )
        elif mode == "answer":
            self.tenant.call_later(call, DEVICE_RESPONSE + behaviour.answer_after, on_answer)
        if ring_limit is not None:
            call.timers.append(
                self.tenant.later(DEVICE_RESPONSE + ring_limit, self._fail, call, "timeout")
            )

    def _caller_ring(self, call: Originate) -> None:
        self._progress(call, "caller-ring")
        if call.caller_leg is not None:
            self.tenant.set_phase(call, call.caller_leg, LEG_RINGING, "caller-ring")

    def _caller_answer(self, call: Originate) -> None:
        if call.timeout_timer is not None:
            call.timeout_timer.cancel()
        self._progress(call, "caller-answer")
        if call.caller_leg is not None:
            self.tenant.set_phase(call, call.caller_leg, CONNECTED, "caller-answer")
        self.tenant.call_later(call, PBX_STEP, self._dial)

    def _dial(self, call: Originate) -> None:
        self._progress(call, "dial")
        if self.tenant.oddities.late_dial and call.caller_leg is not None:
            self.tenant.leg_event(call, call.caller_leg, "dial")
        callee_ext = call.callee_extension
        if callee_ext is not None:
            call.callee_behaviour = self.tenant.effective(callee_ext)
        elif call.callee_context == "conference":
            call.callee_behaviour = CONFERENCE
        else:
            call.callee_behaviour = self.tenant.remote_behaviours.get(call.callee, DEFAULT_REMOTE)
        self._approach(call, call.callee_behaviour, self._ring, self._answer, CALLEE_RING_LIMIT)

    def _callee_leg(self, call: Originate) -> Leg | None:
        if call.callee_extension is None:
            return None
        for leg in call.legs:
            if leg is not call.caller_leg:
                return leg
        return self.tenant.add_leg(call, call.callee_extension, "inbound", SETUP, new_uuid())

    def _ring(self, call: Originate) -> None:
        self._progress(call, "ring")
        if self.tenant.oddities.late_dial and call.caller_leg is not None:
            self.tenant.leg_event(call, call.caller_leg, "ring")
        leg = self._callee_leg(call)
        if leg is not None:
            self.tenant.set_phase(call, leg, LEG_RINGING, "ring")

    def _answer(self, call: Originate) -> None:
        for timer in call.timers:
            timer.cancel()
        call.timers.clear()
        self._progress(call, "answer")
        leg = self._callee_leg(call)
        if leg is not None:
            self.tenant.connect(call, leg)
        if call.caller_leg is not None:
            self.tenant.leg_event(call, call.caller_leg, "answer")
            if self.tenant.oddities.bridge:
                self.tenant.leg_event(call, call.caller_leg, "bridge")
        call.answered = True
        # `end` follows `answer` at once: the request is done, the call goes on without it.
        self._end(call, None)
        talk = [
            b.hangup_after
            for b in (call.caller_behaviour, call.callee_behaviour)
            if b.hangup_after is not None
        ]
        if talk:
            call.timers.append(self.tenant.later(min(talk), self.tenant.finish, call))

    def _end(self, call: Originate, error: str | None) -> None:
        if not call.ended:
            call.ended = True
            self._progress(call, "end", error)
            call.watchers.clear()

    def _fail(self, call: Originate, error: str) -> None:
        self._end(call, error)
        self.tenant.finish(call)

    def cancel(self, call_uuid: str) -> None:
        """DELETE: cancel a click-to-dial in progress, or hang it up once established."""
        call = self.tenant.calls.get(call_uuid)
        if not isinstance(call, Originate) or call.uuid != call_uuid:
            raise NotFound(f"call {call_uuid} not found")
        if call.ended:
            self.tenant.finish(call)
        else:
            self._fail(call, "cancel")
