"""The CTI API's endpoints: shapes, negotiation, validation, streams."""

import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from .conftest import Tenant, assert_matches_spec, open_stream

DIRECTORY = [
    {"number": "100", "name": "Anna Müller"},
    {"number": "101", "name": "Ben Schmidt"},
    {"number": "102", "name": "Empfang"},
]


@pytest.fixture
def office(make_tenant: Callable[..., Tenant]) -> Tenant:
    return make_tenant(DIRECTORY)


def test_extension_data_lists_every_extension(office: Tenant) -> None:
    response = office.api().get("/extensions/phone/data")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == [
        {
            "uuid": f"{entry['number']}@{office.account}",
            "extension_number": entry["number"],
            "name": entry["name"],
        }
        for entry in DIRECTORY
    ]
    for entry in response.json():
        assert_matches_spec("extensionData", entry)


def test_snapshot_returns_every_state_or_the_requested_ones(office: Tenant) -> None:
    api = office.api(Accept="application/json")

    everything = api.get("/extensions/phone/states")
    some = api.get("/extensions/phone/states?extension=100&extension=102&extension=999")

    assert everything.status_code == 200
    assert everything.headers["content-type"] == "application/json"
    assert everything.json() == office.control.states(office.account)
    assert [state["extension"] for state in everything.json()] == ["100", "101", "102"]
    assert [state["extension"] for state in some.json()] == ["100", "102"]
    for state in everything.json():
        assert_matches_spec("state", state)
        assert state["customer"] == office.account


@pytest.mark.parametrize("accept", ["", "*/*", "text/event-stream", "text/*;q=0.5, */*;q=0.1"])
def test_states_stream_bootstraps_every_extension_then_streams_changes(
    office: Tenant, accept: str
) -> None:
    stream = open_stream(office.api(Accept=accept), "GET", "/extensions/phone/states")

    assert stream.take(3) == office.control.states(office.account)
    office.control.set_state(office.account, "101", presence="dnd")
    office.control.set_state(office.account, "100", line="in-use", presence="away")
    changes = stream.take(2)
    assert [(c["extension"], c["presence"], c["line"]) for c in changes] == [
        ("101", "dnd", office.control.states(office.account)[1]["line"]),
        ("100", "away", "in-use"),
    ]
    for change in changes:
        assert_matches_spec("state", change)


def test_states_accept_any_string_the_control_api_sets(office: Tenant) -> None:
    stream = open_stream(office.api(), "GET", "/extensions/phone/states")
    stream.take(3)

    office.control.set_state(office.account, "102", line="busy", presence="on-holiday")

    change = stream.next()
    assert (change["line"], change["presence"]) == ("busy", "on-holiday")
    snapshot = office.api(Accept="application/json").get("/extensions/phone/states?extension=102")
    assert (snapshot.json()[0]["line"], snapshot.json()[0]["presence"]) == ("busy", "on-holiday")


def test_calls_stream_sends_only_events_after_connect(office: Tenant) -> None:
    before = office.control.ring(office.account, "4930123456", "100")
    stream = open_stream(office.api(), "GET", "/extensions/phone/calls")

    office.control.answer(office.account, before["uuid"])
    office.control.hangup(office.account, before["uuid"])

    answer, hangup = stream.take(2)
    assert [answer["state"], hangup["state"]] == ["answer", "hangup"]
    assert answer == {
        "uuid": before["uuid"],
        "state": "answer",
        "caller": "4930123456",
        "caller_context": "global",
        "callee": "100",
        "callee_context": office.account,
        "direction": "inbound",
        "extension": "100",
        "customer": office.account,
        "updated": answer["updated"],
    }
    assert_matches_spec("call", answer)


@pytest.mark.parametrize(
    ("path", "accept"),
    [
        ("/extensions/phone/calls", "application/json"),
        ("/extensions/phone/calls", "text/event-stream;q=0"),
        ("/extensions/phone/states", "text/html"),
    ],
)
def test_unservable_accept_gets_406(office: Tenant, path: str, accept: str) -> None:
    response = office.api(Accept=accept).get(path)

    assert response.status_code == 406
    assert response.json()["error"]


def test_streams_send_keepalive_comments(make_tenant: Callable[..., Tenant]) -> None:
    tenant = make_tenant(keepalive=0.05)
    with tenant.api().stream("GET", "/extensions/phone/calls") as response:
        lines = response.iter_lines()
        assert next(lines) == ": keepalive"


def test_closed_streams_are_cleaned_up(office: Tenant) -> None:
    api = office.api()
    streams = [
        open_stream(api, "GET", "/extensions/phone/states"),
        open_stream(api, "GET", "/extensions/phone/calls"),
    ]
    assert office.control.counters(office.account)["open_streams"] == {
        "states": 1,
        "calls": 1,
        "originate": 0,
    }

    for stream in streams:
        stream.response.close()

    deadline = time.monotonic() + 5
    while any(office.control.counters(office.account)["open_streams"].values()):
        assert time.monotonic() < deadline, "the server kept a closed stream's subscriber"
        time.sleep(0.02)
    assert office.control.counters(office.account)["streams_opened"] == 2


def test_generated_traffic_on_the_streams_matches_the_spec(
    make_tenant: Callable[..., Tenant],
) -> None:
    tenant = make_tenant(40, traffic_rate=200.0)
    api = tenant.api()
    states = open_stream(api, "GET", "/extensions/phone/states")
    calls = open_stream(api, "GET", "/extensions/phone/calls")

    for event in states.take(80):
        assert_matches_spec("state", event)
    for event in calls.take(40):
        assert_matches_spec("call", event)
        assert event["customer"] == tenant.account
    assert tenant.control.counters(tenant.account)["events_sent"] >= 120


def _originate(api: httpx.Client, body: Any, **headers: str) -> httpx.Response:
    return api.post("/extensions/phone/calls", json=body, headers=headers)


CONFERENCE = {
    "caller": "49123456789",
    "caller_context": "global",
    "caller_role": "user",
    "callee": "K0001-0001",
    "callee_context": "conference",
    "callee_conference_uuid": "058fe04b-ad68-493f-bdd9-67dcb6637696",
}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "JSON object"),
        ({"callee": "101"}, "caller is required"),
        ({"caller": "100"}, "callee is required"),
        ({"caller": "", "callee": "101"}, "caller is required"),
        ({"caller": "100", "callee": "101", "timeout": 0}, "timeout"),
        ({"caller": "100", "callee": "101", "timeout": 121}, "timeout"),
        ({"caller": "100", "callee": "101", "timeout": "20"}, "timeout"),
        ({"caller": "100", "callee": "101", "timeout": 1.5}, "timeout"),
        ({"caller": "100", "callee": "101", "timeout": True}, "timeout"),
        ({"caller": "100", "callee": "101", "caller_context": "K0001"}, "caller_context"),
        ({"caller": "100", "callee": "101", "callee_context": "mars"}, "callee_context"),
        ({"caller": 100, "callee": "101"}, "caller must be a string"),
        ({"caller": "100", "callee": "101", "state": "flying"}, "state"),
        ({"caller": "100", "callee": "101", "uuid": "nope"}, "uuid"),
        ({"caller": "100", "callee": "101", "updated": "yesterday"}, "updated"),
        ({"caller": "999", "callee": "101"}, "extension 999"),
        ({"caller": "100", "callee": "999"}, "extension 999"),
        ({"caller": "100", "callee": "101", "extension": "999"}, "extension 999"),
        ({"caller": "100", "callee": "+4930123", "callee_context": "global"}, "prefix"),
        ({"caller": "100", "callee": "004930123", "callee_context": "global"}, "prefix"),
        # E.164: 7 to 15 digits with the country code.
        ({"caller": "100", "callee": "491", "callee_context": "global"}, "international"),
        ({"caller": "100", "callee": "4930123456789012345", "callee_context": "global"}, "intern"),
        ({"caller": "123456", "caller_context": "global", "callee": "101"}, "international"),
        ({**CONFERENCE, "caller_role": "king"}, "caller_role"),
        ({**CONFERENCE, "callee_conference_uuid": None}, "callee_conference_uuid"),
        (CONFERENCE, "X-Cloudya-Device-UUID"),
    ],
)
def test_originate_rejects_invalid_bodies_with_400(office: Tenant, body: Any, message: str) -> None:
    response = _originate(office.api(), body)

    assert response.status_code == 400
    assert message in response.json()["error"]
    assert office.control.calls(office.account) == []


@pytest.mark.parametrize("content", [b"", b"{not json", b'{"caller": NaN}'])
def test_originate_rejects_unparsable_bodies_with_400(office: Tenant, content: bytes) -> None:
    response = office.api().post("/extensions/phone/calls", content=content)

    assert response.status_code == 400
    assert response.json()["error"]


@pytest.mark.parametrize("accept", [None, "application/json", "*/*"])
def test_originate_answers_202_with_the_start_event(office: Tenant, accept: str | None) -> None:
    headers = {} if accept is None else {"Accept": accept}
    api = office.api(**headers)
    if accept is None:
        del api.headers["Accept"]

    response = _originate(
        api, {"caller": "100", "callee": "4989123456", "callee_context": "global"}
    )

    assert response.status_code == 202
    start = response.json()
    assert start == {
        "uuid": start["uuid"],
        "caller": "100",
        "caller_context": office.account,
        "callee": "4989123456",
        "callee_context": "global",
        "extension": "100",
        "direction": "outbound",
        "state": "start",
        "updated": start["updated"],
    }
    assert_matches_spec("call", start)
    assert uuid.UUID(start["uuid"])
    assert [call["uuid"] for call in office.control.calls(office.account)] == [start["uuid"]]


def test_conference_join_with_device_uuid_is_accepted(office: Tenant) -> None:
    response = _originate(office.api(), CONFERENCE, **{"X-Cloudya-Device-UUID": str(uuid.uuid4())})

    assert response.status_code == 202
    assert response.json()["callee_context"] == "conference"


@pytest.mark.parametrize(
    ("call_uuid", "status"),
    [
        ("not-a-uuid", 400),
        ("715a1333-0174-40ea-8b38", 400),
        (str(uuid.uuid4()), 404),
        ("abcdefgh-ijkl-mnop-qrst-uvwxyz012345", 404),  # matches the spec's \w pattern
    ],
)
def test_cancel_answers_400_for_malformed_and_404_for_unknown_uuids(
    office: Tenant, call_uuid: str, status: int
) -> None:
    response = office.api().delete(f"/extensions/phone/calls/{call_uuid}")

    assert response.status_code == status
    assert response.json()["error"]


def test_cancel_only_knows_click_to_dial_calls(office: Tenant) -> None:
    inbound = office.control.ring(office.account, "4930123456", "100")

    response = office.api().delete(f"/extensions/phone/calls/{inbound['uuid']}")

    assert response.status_code == 404


def test_unknown_paths_and_methods_get_json_errors(office: Tenant) -> None:
    client = office.client()

    missing, wrong_method = client.get("/extensions/phone/nothing"), client.delete("/login")

    assert (missing.status_code, missing.json()) == (404, {"error": "Not Found"})
    assert wrong_method.status_code == 405
    assert set(wrong_method.headers["allow"].replace(" ", "").split(",")) == {"POST", "PUT"}
    assert wrong_method.json()["error"]


def test_head_on_a_stream_answers_headers_without_holding_a_subscription(office: Tenant) -> None:
    response = office.api().head("/extensions/phone/states")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert office.control.counters(office.account)["open_streams"]["states"] == 0
