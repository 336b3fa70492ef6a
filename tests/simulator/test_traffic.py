"""The traffic generator, in process: stepped with Simulator.advance, so no waiting."""

import json
from collections import defaultdict
from typing import Any

from ctiboard.simulator.names import FIRST_NAMES, FUNCTION_NAMES, LAST_NAMES
from ctiboard.simulator.simulator import SimTenant, Simulator
from ctiboard.simulator.streams import Subscription


def _drain(subscription: Subscription) -> list[dict[str, Any]]:
    events = []
    while not subscription.queue.empty():
        item = subscription.queue.get_nowait()
        assert isinstance(item, bytes)
        event = json.loads(item.removeprefix(b"data: "))
        del event["updated"]  # wall-clock time is the one thing a seed cannot fix
        events.append(event)
    return events


def _run(seed: int, seconds: float = 300, **options: Any) -> tuple[SimTenant, list, list]:
    simulator = Simulator(seed=seed)
    options.setdefault("traffic_rate", 2.0)
    tenant = simulator.add_tenant(
        account="K1000", username="K1000/ctiboard", password="secret", extensions=40, **options
    )
    states, calls = tenant.state.subscribe("states"), tenant.state.subscribe("calls")
    simulator.advance(seconds)
    return tenant, _drain(states), _drain(calls)


def test_the_same_seed_gives_the_same_events() -> None:
    first, first_states, first_calls = _run(seed=42)
    second, second_states, second_calls = _run(seed=42)

    assert first.traffic.actions == second.traffic.actions > 0
    assert first_states == second_states and first_states
    assert first_calls == second_calls and first_calls
    assert first.state.extension_data() == second.state.extension_data()


def test_another_seed_gives_other_events() -> None:
    _, states, calls = _run(seed=1)
    _, other_states, other_calls = _run(seed=2)

    assert (states, calls) != (other_states, other_calls)


def test_traffic_has_every_kind_of_change() -> None:
    tenant, states, calls = _run(seed=3, seconds=600)

    legs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in calls:
        legs[event["uuid"]].append(event)
    kinds = {
        (leg[0]["direction"], leg[0]["caller_context"], leg[0]["callee_context"])
        for leg in legs.values()
    }
    account = tenant.account
    assert ("inbound", "global", account) in kinds  # external callers
    assert ("outbound", account, "global") in kinds  # calls out
    assert ("inbound", account, account) in kinds  # internal calls, the callee's leg
    assert ("outbound", account, account) in kinds  # internal calls, the caller's leg
    sequences = {tuple(event["state"] for event in leg) for leg in legs.values()}
    assert ("ring", "answer", "hangup") in sequences  # answered
    assert ("ring", "hangup") in sequences  # missed
    assert ("dial", "ring", "answer", "hangup") in sequences  # answered outbound
    assert {state["line"] for state in states} >= {"ringing", "in-use", "idle", "offline"}
    assert {state["presence"] for state in states} >= {"available", "away", "busy", "dnd"}


def test_without_extended_presence_only_available_and_offline_appear() -> None:
    tenant, states, _ = _run(seed=4, extended_presence=False)

    assert {state["presence"] for state in tenant.state.states()} <= {"available", "offline"}
    assert {state["presence"] for state in states} <= {"available", "offline"}


def test_hunt_group_oddity_rings_several_extensions_under_one_uuid() -> None:
    simulator = Simulator(seed=5)
    tenant = simulator.add_tenant(
        account="K1000", username="K1000/u", password="pw", extensions=40, traffic_rate=2.0
    )
    tenant.state.set_oddities(hunt_group=True)
    calls = tenant.state.subscribe("calls")
    simulator.advance(300)

    rung: dict[str, set[str]] = defaultdict(set)
    for event in _drain(calls):
        if event["state"] == "ring" and event["direction"] == "inbound":
            rung[event["uuid"]].add(event["extension"])
    assert max(len(extensions) for extensions in rung.values()) >= 2


def test_pause_resume_and_rate_control_the_generator() -> None:
    simulator = Simulator(seed=6)
    tenant = simulator.add_tenant(
        account="K1000", username="K1000/u", password="pw", extensions=10, traffic_rate=5.0
    )
    simulator.advance(10)
    running = tenant.traffic.actions
    assert running > 0

    tenant.traffic.pause()
    simulator.advance(60)
    assert tenant.traffic.actions == running

    tenant.traffic.resume()
    simulator.advance(10)
    resumed = tenant.traffic.actions
    assert resumed > running

    tenant.set_traffic_rate(0)
    simulator.advance(60)
    assert tenant.traffic.actions == resumed


def test_directories_are_plausible_and_deterministic() -> None:
    directory = Simulator(seed=9).add_tenant(
        account="K1000", username="K1000/u", password="pw", extensions=200
    )
    again = Simulator(seed=9).add_tenant(
        account="K1000", username="K1000/u", password="pw", extensions=200
    )

    data = directory.state.extension_data()
    assert data == again.state.extension_data()
    assert [entry["extension_number"] for entry in data] == [str(n) for n in range(100, 300)]
    for entry in data:
        first, _, last = entry["name"].partition(" ")
        assert entry["name"] in FUNCTION_NAMES or (first in FIRST_NAMES and last in LAST_NAMES)
    assert len({entry["name"] for entry in data}) > 100


def test_five_thousand_extensions_times_a_hundred_tenants_run_in_one_process() -> None:
    simulator = Simulator(seed=10)
    tenants = [
        simulator.add_tenant(
            account=f"K{10_000 + index}",
            username=f"K{10_000 + index}/ctiboard",
            password="secret",
            extensions=5000,
            traffic_rate=2.0,
        )
        for index in range(100)
    ]
    watched = tenants[0].state.subscribe("calls")

    simulator.advance(30)

    assert len(tenants[-1].state.extension_list) == 5000
    assert tenants[-1].state.extension_list[-1].number == "5999"
    assert sum(tenant.traffic.actions for tenant in tenants) > 100 * 2 * 30 * 0.8
    assert sum(len(tenant.state.active_calls()) for tenant in tenants) > 1000
    assert _drain(watched)
