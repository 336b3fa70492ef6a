"""Click-to-dial: every outcome's event order on the POST stream, the call stream and the lines.

Tenants run at time_scale 0.01, so a two-second ring takes 20 ms.
"""

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from .conftest import Stream, Tenant, assert_matches_spec, open_stream


@dataclass
class Office:
    tenant: Tenant
    api: Any
    states: Stream
    calls: Stream

    def behave(self, number: str, mode: str = "answer", **options: Any) -> None:
        options.setdefault("hangup_after", None)
        self.tenant.control.set_behaviour(self.tenant.account, number, mode, **options)

    def originate(self, **body: Any) -> list[dict[str, Any]]:
        """POST with Accept: text/event-stream; the progress events up to `end`."""
        stream = open_stream(
            self.api,
            "POST",
            "/extensions/phone/calls",
            json=body,
            headers={"Accept": "text/event-stream"},
        )
        events = stream.until(lambda event: event["state"] == "end")
        assert stream.ended()
        return events

    def call_events(self, count: int) -> dict[str, list[tuple[str, str]]]:
        """The next ``count`` call-stream events as (state, direction) per extension."""
        legs: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for event in self.calls.take(count):
            assert_matches_spec("call", event)
            legs[event["extension"]].append((event["state"], event["direction"]))
        return dict(legs)

    def lines(self, count: int) -> dict[str, list[str]]:
        """The next ``count`` line changes per extension."""
        lines: dict[str, list[str]] = defaultdict(list)
        for event in self.states.take(count):
            lines[event["extension"]].append(event["line"])
        return dict(lines)


@pytest.fixture
def office(make_tenant: Callable[..., Tenant]) -> Office:
    tenant = make_tenant([{"number": n, "name": f"Phone {n}"} for n in ("100", "101", "102")])
    for number in ("100", "101", "102"):
        tenant.control.set_behaviour(tenant.account, number, answer_after=1.0, hangup_after=None)
    api = tenant.api()
    states = open_stream(api, "GET", "/extensions/phone/states")
    assert {state["line"] for state in states.take(3)} == {"idle"}
    return Office(tenant, api, states, open_stream(api, "GET", "/extensions/phone/calls"))


def _progress(events: list[dict[str, Any]]) -> list[str]:
    assert len({event["uuid"] for event in events}) == 1
    for event in events:
        assert set(event) <= {"uuid", "state", "updated", "error"}
        assert_matches_spec("call", event)
    assert "error" not in {key for event in events[:-1] for key in event}
    return [event["state"] for event in events]


OUT, IN = "outbound", "inbound"


def test_answered_call_rings_the_caller_then_the_callee(office: Office) -> None:
    events = office.originate(caller="100", callee="101")

    assert _progress(events) == [
        "start",
        "caller-dial",
        "caller-ring",
        "caller-answer",
        "dial",
        "ring",
        "answer",
        "end",
    ]
    assert "error" not in events[-1]
    assert office.call_events(6) == {
        "100": [
            ("caller-dial", OUT),
            ("caller-ring", OUT),
            ("caller-answer", OUT),
            ("answer", OUT),
        ],
        "101": [("ring", IN), ("answer", IN)],
    }
    assert office.lines(4) == {"100": ["ringing", "in-use"], "101": ["ringing", "in-use"]}

    # Established: DELETE hangs up, and the uuid is gone afterwards.
    call_uuid = events[0]["uuid"]
    assert office.api.delete(f"/extensions/phone/calls/{call_uuid}").status_code == 204
    assert office.call_events(2) == {"100": [("hangup", OUT)], "101": [("hangup", IN)]}
    assert office.lines(2) == {"100": ["idle"], "101": ["idle"]}
    assert office.api.delete(f"/extensions/phone/calls/{call_uuid}").status_code == 404


def test_auto_answering_phones_skip_the_optional_ring_events(office: Office) -> None:
    office.behave("100", answer_after=0)
    office.behave("101", answer_after=0)

    events = office.originate(caller="100", callee="101")

    assert _progress(events) == ["start", "caller-dial", "caller-answer", "dial", "answer", "end"]
    assert office.call_events(4) == {
        "100": [("caller-dial", OUT), ("caller-answer", OUT), ("answer", OUT)],
        "101": [("answer", IN)],
    }
    assert office.lines(2) == {"100": ["in-use"], "101": ["in-use"]}


def test_the_call_ends_when_a_side_hangs_up(office: Office) -> None:
    office.behave("101", answer_after=1.0, hangup_after=5.0)

    office.originate(caller="100", callee="101")

    office.call_events(6)
    office.lines(4)
    assert office.call_events(2) == {"100": [("hangup", OUT)], "101": [("hangup", IN)]}
    assert office.lines(2) == {"100": ["idle"], "101": ["idle"]}
    assert office.tenant.control.calls(office.tenant.account) == []


CALLER_FAILURES = [
    # caller behaviour, body, progress, error, call events of the caller, its lines
    (
        {"mode": "never"},
        {"timeout": 1},
        ["start", "caller-dial", "caller-ring", "end"],
        "timeout",
        ["caller-dial", "caller-ring", "hangup"],
        ["ringing", "idle"],
    ),
    (
        {"answer_after": 30.0},  # answers, but only after the timeout
        {"timeout": 2},
        ["start", "caller-dial", "caller-ring", "end"],
        "timeout",
        ["caller-dial", "caller-ring", "hangup"],
        ["ringing", "idle"],
    ),
    (
        {"mode": "reject"},
        {},
        ["start", "caller-dial", "caller-ring", "end"],
        "reject",
        ["caller-dial", "caller-ring", "hangup"],
        ["ringing", "idle"],
    ),
    (
        {"mode": "busy"},
        {},
        ["start", "caller-dial", "end"],
        "busy",
        ["caller-dial", "hangup"],
        [],
    ),
]


@pytest.mark.parametrize(
    ("behaviour", "extra", "progress", "error", "leg", "lines"), CALLER_FAILURES
)
def test_caller_side_failures_end_with_their_error(
    office: Office,
    behaviour: dict[str, Any],
    extra: dict[str, Any],
    progress: list[str],
    error: str,
    leg: list[str],
    lines: list[str],
) -> None:
    office.behave("100", **behaviour)

    events = office.originate(caller="100", callee="101", **extra)

    assert _progress(events) == progress
    assert events[-1]["error"] == error
    assert office.call_events(len(leg)) == {"100": [(state, OUT) for state in leg]}
    if lines:
        assert office.lines(len(lines)) == {"100": lines}


def test_an_offline_caller_fails_unspecified(office: Office) -> None:
    office.behave("100", "offline")
    assert office.lines(1) == {"100": ["offline"]}

    events = office.originate(caller="100", callee="101")

    assert _progress(events) == ["start", "caller-dial", "end"]
    assert events[-1]["error"] == "unspecified"


CALLEE_FAILURES = [
    # callee behaviour, progress after caller-answer, error, callee call events, callee lines
    (
        {"mode": "reject"},
        ["dial", "ring", "end"],
        "reject",
        ["ring", "hangup"],
        ["ringing", "idle"],
    ),
    (
        {"mode": "never"},
        ["dial", "ring", "end"],
        "timeout",
        ["ring", "hangup"],
        ["ringing", "idle"],
    ),
    ({"mode": "busy"}, ["dial", "end"], "busy", [], []),
    ({"mode": "offline"}, ["dial", "end"], "unspecified", [], ["offline"]),
]


@pytest.mark.parametrize(("behaviour", "progress", "error", "leg", "lines"), CALLEE_FAILURES)
def test_callee_side_failures_end_with_their_error(
    office: Office,
    behaviour: dict[str, Any],
    progress: list[str],
    error: str,
    leg: list[str],
    lines: list[str],
) -> None:
    office.behave("101", **behaviour)

    events = office.originate(caller="100", callee="101")

    assert _progress(events) == ["start", "caller-dial", "caller-ring", "caller-answer", *progress]
    assert events[-1]["error"] == error
    caller_leg = ["caller-dial", "caller-ring", "caller-answer", "hangup"]
    expected = {"100": [(state, OUT) for state in caller_leg]}
    if leg:
        expected["101"] = [(state, IN) for state in leg]
    assert office.call_events(len(caller_leg) + len(leg)) == expected
    expected_lines = {"100": ["ringing", "in-use", "idle"]} | ({"101": lines} if lines else {})
    assert office.lines(sum(map(len, expected_lines.values()))) == expected_lines


def test_a_callee_in_another_call_is_busy(office: Office) -> None:
    inbound = office.tenant.control.ring(office.tenant.account, "4930123456", "101")
    office.tenant.control.answer(office.tenant.account, inbound["uuid"])
    office.call_events(2)

    events = office.originate(caller="100", callee="101")

    assert _progress(events)[-2:] == ["dial", "end"]
    assert events[-1]["error"] == "busy"


def test_delete_cancels_a_call_in_progress(office: Office) -> None:
    office.behave("100", "never")
    stream = open_stream(
        office.api,
        "POST",
        "/extensions/phone/calls",
        json={"caller": "100", "callee": "101", "timeout": 120},
        headers={"Accept": "text/event-stream"},
    )
    start, dial, ring = stream.take(3)
    assert [start["state"], dial["state"], ring["state"]] == ["start", "caller-dial", "caller-ring"]

    response = office.api.delete(f"/extensions/phone/calls/{start['uuid']}")

    assert response.status_code == 204
    end = stream.next()
    assert (end["state"], end["error"]) == ("end", "cancel")
    assert stream.ended()
    assert office.call_events(3) == {
        "100": [("caller-dial", OUT), ("caller-ring", OUT), ("hangup", OUT)]
    }
    assert office.lines(2) == {"100": ["ringing", "idle"]}
    assert office.api.delete(f"/extensions/phone/calls/{start['uuid']}").status_code == 404


def test_a_202_call_proceeds_and_can_be_cancelled(office: Office) -> None:
    office.behave("100", "never")

    response = office.api.post(
        "/extensions/phone/calls", json={"caller": "100", "callee": "101", "timeout": 120}
    )

    assert response.status_code == 202
    call_uuid = response.json()["uuid"]
    assert office.call_events(2) == {"100": [("caller-dial", OUT), ("caller-ring", OUT)]}
    assert office.api.delete(f"/extensions/phone/calls/{call_uuid}").status_code == 204
    assert office.call_events(1) == {"100": [("hangup", OUT)]}


def test_external_callee_follows_its_remote_behaviour(office: Office) -> None:
    account = office.tenant.account
    office.tenant.control.set_remote_behaviour(account, "4989123456", answer_after=1.0)

    events = office.originate(caller="100", callee="4989123456", callee_context="global")

    assert _progress(events)[3:] == ["caller-answer", "dial", "ring", "answer", "end"]
    assert office.call_events(4) == {
        "100": [("caller-dial", OUT), ("caller-ring", OUT), ("caller-answer", OUT), ("answer", OUT)]
    }


def test_extension_override_reports_the_call_on_that_extension(office: Office) -> None:
    events = office.originate(
        caller="4915112345678", caller_context="global", callee="101", extension="102"
    )

    assert _progress(events)[-1] == "end" and "error" not in events[-1]
    legs = office.call_events(6)
    assert legs["102"] == [
        ("caller-dial", OUT),
        ("caller-ring", OUT),
        ("caller-answer", OUT),
        ("answer", OUT),
    ]
    assert legs["101"] == [("ring", IN), ("answer", IN)]


@pytest.mark.parametrize("callee", ["4930123", "493012345678901"])
def test_global_callees_of_7_and_15_digits_are_dialled(office: Office, callee: str) -> None:
    events = office.originate(caller="100", callee=callee, callee_context="global")

    assert _progress(events)[:2] == ["start", "caller-dial"]
