"""The PBX decides whether the caller's phone is busy when it dials it, not at the POST
(simulated time, in process: the window between the two is the PBX's first step)."""

import json

from ctiboard.simulator.model import OriginateRequest
from ctiboard.simulator.simulator import SimTenant, Simulator


def _office() -> tuple[Simulator, SimTenant]:
    simulator = Simulator(seed=3)
    tenant = simulator.add_tenant(
        account="K1000", username="K1000/api", password="pw", extensions=[("100", "A")]
    )
    return simulator, tenant


def _progress_after_dial(simulator: Simulator, tenant: SimTenant, call_uuid: str) -> list[str]:
    subscription = tenant.dial.watch(tenant.state.calls[call_uuid])  # type: ignore[arg-type]
    simulator.advance(5)
    states = []
    queue = subscription.queue
    while not queue.empty():
        item = queue.get_nowait()
        if isinstance(item, bytes):
            states.append(json.loads(item.removeprefix(b"data: "))["state"])
    return states


def _click_to_dial(tenant: SimTenant) -> str:
    request = OriginateRequest(
        caller="100", callee="4989123456", caller_context="K1000", callee_context="global"
    )
    return tenant.dial.originate(request).uuid


def test_a_caller_whose_call_ends_before_the_pbx_dials_is_not_busy() -> None:
    simulator, tenant = _office()
    inbound = tenant.state.ring("4930123456", ["100"])
    tenant.state.answer(inbound.uuid)

    call_uuid = _click_to_dial(tenant)  # 100 is in a call now ...
    tenant.hangup(inbound.uuid)  # ... but no longer when the PBX dials it

    assert _progress_after_dial(simulator, tenant, call_uuid)[:3] == [
        "caller-dial",
        "caller-ring",
        "caller-answer",
    ]


def test_a_caller_who_takes_another_call_before_the_pbx_dials_is_busy() -> None:
    simulator, tenant = _office()

    call_uuid = _click_to_dial(tenant)  # 100 is free now ...
    inbound = tenant.state.ring("4930123456", ["100"])
    tenant.state.answer(inbound.uuid)  # ... but in a call when the PBX dials it

    assert _progress_after_dial(simulator, tenant, call_uuid) == ["caller-dial", "end"]
