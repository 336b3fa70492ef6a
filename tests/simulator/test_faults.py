"""Injected faults and the real-traffic oddities outside the spec."""

import json
from collections.abc import Callable

import httpx
import pytest

from ctiboard.simulator.control import SimulatorControlError

from .conftest import RawStream, Tenant, open_stream


@pytest.fixture
def office(make_tenant: Callable[..., Tenant]) -> Tenant:
    tenant = make_tenant([{"number": n, "name": f"Phone {n}"} for n in ("100", "101", "102")])
    for number in ("100", "101", "102"):
        tenant.control.set_behaviour(tenant.account, number, answer_after=1.0, hangup_after=None)
    return tenant


def test_drop_closes_the_chosen_streams_cleanly(office: Tenant) -> None:
    api = office.api()
    states = open_stream(api, "GET", "/extensions/phone/states")
    calls = open_stream(api, "GET", "/extensions/phone/calls")
    states.take(3)

    result = office.control.inject_fault(office.account, "drop", stream="states")

    assert result["streams"] == 1
    assert states.ended()
    office.control.ring(office.account, "4930123456", "100")
    assert calls.next()["state"] == "ring"  # the call stream was not touched


def test_drop_ends_a_click_to_dial_stream_without_its_end_event(office: Tenant) -> None:
    office.control.set_behaviour(office.account, "100", "never")
    stream = open_stream(
        office.api(),
        "POST",
        "/extensions/phone/calls",
        json={"caller": "100", "callee": "101", "timeout": 120},
        headers={"Accept": "text/event-stream"},
    )
    assert stream.next()["state"] == "start"

    office.control.inject_fault(office.account, "drop", stream="originate")

    states = []
    with pytest.raises(EOFError):
        while True:
            states.append(stream.next()["state"])
    assert "end" not in states  # the stream just stops


def test_truncate_closes_mid_frame_without_the_final_newline(office: Tenant) -> None:
    with office.api().stream("GET", "/extensions/phone/states") as response:
        chunks = response.iter_raw()
        received = b""
        while received.count(b"\n\n") < 3:  # the bootstrap
            received += next(chunks)

        office.control.inject_fault(office.account, "truncate", stream="states")
        received += b"".join(chunks)  # up to the server closing the stream

    complete, _, partial = received.rpartition(b"\n\n")
    assert complete.count(b"data: ") == 3
    assert partial.startswith(b"data: {") and not partial.endswith(b"\n")
    with pytest.raises(ValueError):
        json.loads(partial[len(b"data: ") :])


def test_unauthorized_closes_streams_and_answers_the_next_request_401_once(
    office: Tenant,
) -> None:
    api = office.api()
    calls = open_stream(api, "GET", "/extensions/phone/calls")

    assert office.control.inject_fault(office.account, "unauthorized")["streams"] == 1

    assert calls.ended()
    assert office.control.faults(office.account)["unauthorized_once"] is True
    rejected = api.get("/extensions/phone/data")
    assert rejected.status_code == 401 and rejected.json()["error"]
    assert api.get("/extensions/phone/data").status_code == 200


@pytest.mark.parametrize("status", [500, 503])
def test_http_errors_hit_the_chosen_endpoint_for_the_next_n_requests(
    office: Tenant, status: int
) -> None:
    api = office.api()
    office.control.inject_fault(
        office.account, "http_error", status=status, endpoint="/extensions/phone/data", count=2
    )

    failures = [api.get("/extensions/phone/data") for _ in range(2)]
    other = api.get("/extensions/phone/states", headers={"Accept": "application/json"})

    for response in failures:
        assert response.status_code == status
        assert response.json()["error"]
        assert response.headers["x-request-id"]
        assert ("retry-after" in response.headers) == (status == 503)
    assert other.status_code == 200
    assert api.get("/extensions/phone/data").status_code == 200


def test_http_errors_can_target_a_method_and_path_or_everything(office: Tenant) -> None:
    office.control.inject_fault(office.account, "http_error", endpoint="POST /login")
    credentials = {"username": office.username, "password": office.password}
    assert office.client().post("/login", json=credentials).status_code == 500
    api = office.api()

    office.control.inject_fault(office.account, "http_error", status=503, count=2)

    assert (
        api.delete("/extensions/phone/calls/00000000-0000-0000-0000-000000000000").status_code
        == 503
    )
    assert api.get("/extensions/phone/calls").status_code == 503
    assert api.get("/extensions/phone/data").status_code == 200


def test_delay_holds_responses_back(office: Tenant) -> None:
    token = office.login()["access-token"]
    office.control.inject_fault(
        office.account, "delay", seconds=5.0, endpoint="GET /extensions/phone/data", count=1
    )
    impatient = office.client(token)
    impatient.timeout = httpx.Timeout(5.0, read=0.3)

    with pytest.raises(httpx.ReadTimeout):
        impatient.get("/extensions/phone/data")
    assert impatient.get("/extensions/phone/data").status_code == 200  # count=1 is used up


def test_stall_keeps_the_connection_but_stops_sending_until_cleared(
    make_tenant: Callable[..., Tenant],
) -> None:
    tenant = make_tenant(keepalive=0.05)
    stream = RawStream(tenant, tenant.login()["access-token"], "/extensions/phone/calls")
    try:
        stream.read_until(b": keepalive\n\n")

        tenant.control.inject_fault(tenant.account, "stall")

        # Whatever was in flight, then ten keepalive intervals of silence.
        with pytest.raises(TimeoutError):
            for _ in range(100):
                stream.read(timeout=0.5)
        assert tenant.control.counters(tenant.account)["open_streams"]["calls"] == 1

        tenant.control.clear_faults(tenant.account)
        tenant.control.ring(tenant.account, "4930123456", tenant.numbers[0])
        assert b'"state":"ring"' in stream.read_until(b'"state":"ring"')
    finally:
        stream.close()


@pytest.mark.parametrize("stream_path", ["/extensions/phone/states", "/extensions/phone/calls"])
def test_malformed_frames(office: Tenant, stream_path: str) -> None:
    stream = open_stream(office.api(), "GET", stream_path)
    if stream_path.endswith("states"):
        stream.take(3)
    kind = "states" if stream_path.endswith("states") else "calls"

    for variant in ("broken_json", "unknown_fields", "missing_fields"):
        office.control.inject_fault(office.account, "malformed", stream=kind, variant=variant)

    with pytest.raises(ValueError):
        json.loads(stream.next_raw())
    extended = stream.next()
    assert {"x_trace", "device"} <= set(extended) and extended["customer"] == office.account
    stripped = stream.next()
    assert "extension" not in stripped and "line" not in stripped and "state" not in stripped


def test_faults_are_listed_and_cleared(office: Tenant) -> None:
    office.control.inject_fault(office.account, "http_error", status=503, count=3)
    office.control.inject_fault(office.account, "delay", seconds=0.5)

    faults = office.control.faults(office.account)
    assert faults["http_errors"] == [{"status": 503, "endpoint": "*", "remaining": 3}]
    assert (faults["delay"], faults["delay_remaining"]) == (0.5, None)

    office.control.clear_faults(office.account)
    assert office.control.faults(office.account)["http_errors"] == []
    assert office.api().get("/extensions/phone/data").status_code == 200


@pytest.mark.parametrize(
    "params",
    [
        {"kind": "meteor"},
        {"kind": "drop", "stream": "everything"},
        {"kind": "malformed", "variant": "emoji"},
        {"kind": "http_error", "status": 200},
        {"kind": "http_error", "count": 0},
        {"kind": "delay", "seconds": -1},
    ],
)
def test_bad_fault_requests_get_400(office: Tenant, params: dict[str, object]) -> None:
    kind = params.pop("kind")
    with pytest.raises(SimulatorControlError) as error:
        office.control.inject_fault(office.account, str(kind), **params)
    assert error.value.status == 400


def test_oddity_line_busy_reports_busy_instead_of_in_use(office: Tenant) -> None:
    office.control.set_oddities(office.account, line_busy=True)
    states = open_stream(office.api(), "GET", "/extensions/phone/states")
    states.take(3)

    call = office.control.ring(office.account, "4930123456", "100")
    office.control.answer(office.account, call["uuid"])

    assert [states.next()["line"], states.next()["line"]] == ["ringing", "busy"]


def test_oddity_bridge_follows_answer_on_every_leg(office: Tenant) -> None:
    office.control.set_oddities(office.account, bridge=True)
    calls = open_stream(office.api(), "GET", "/extensions/phone/calls")

    call = office.control.ring(office.account, "100", "101")  # internal: two legs
    office.control.answer(office.account, call["uuid"])

    events = calls.take(7)
    assert [(e["extension"], e["state"]) for e in events] == [
        ("100", "dial"),
        ("101", "ring"),
        ("100", "ring"),
        ("101", "answer"),
        ("101", "bridge"),
        ("100", "answer"),
        ("100", "bridge"),
    ]


def test_oddity_late_dial_repeats_dial_and_ring_after_caller_answer(office: Tenant) -> None:
    office.control.set_oddities(office.account, late_dial=True)
    api = office.api()
    calls = open_stream(api, "GET", "/extensions/phone/calls")

    api.post(
        "/extensions/phone/calls",
        json={"caller": "100", "callee": "4989123456", "callee_context": "global"},
    )

    states = [event["state"] for event in calls.take(6)]
    assert states == ["caller-dial", "caller-ring", "caller-answer", "dial", "ring", "answer"]


def test_a_hunt_group_call_shares_one_uuid_across_its_legs(office: Tenant) -> None:
    calls = open_stream(office.api(), "GET", "/extensions/phone/calls")

    call = office.control.ring(office.account, "4930123456", ["100", "101", "102"])
    office.control.answer(office.account, call["uuid"], extension="101")

    events = calls.take(6)
    assert {event["uuid"] for event in events} == {call["uuid"]}
    assert [(e["extension"], e["state"]) for e in events] == [
        ("100", "ring"),
        ("101", "ring"),
        ("102", "ring"),
        ("100", "hangup"),
        ("102", "hangup"),
        ("101", "answer"),
    ]


def test_scripted_calls_validate_their_requests(office: Tenant) -> None:
    control, account = office.control, office.account
    call = control.ring(account, "4930123456", "100")

    for action in (
        lambda: control.ring(account, "4930123456", "999"),
        lambda: control.ring(account, "100", "100"),
        lambda: control.answer(account, "no-such-call"),
        lambda: control.answer(account, call["uuid"], extension="102"),
    ):
        with pytest.raises(SimulatorControlError) as error:
            action()
        assert error.value.status in (400, 404, 409)
    control.answer(account, call["uuid"])
    with pytest.raises(SimulatorControlError) as rejected:
        control.reject(account, call["uuid"])
    assert rejected.value.status == 409
    control.hangup(account, call["uuid"])
    assert control.calls(account) == []
