"""`python manage.py simulate` as a process: flags, the listening line, clean exits."""

import json
import re
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from ctiboard.simulator.testing import SimulatorProcess


def test_tenants_from_the_command_line_are_served(simulator: SimulatorProcess) -> None:
    # The session's simulator runs with --seed 7 --tenant K1000:K1000/ctiboard:secret:5.
    assert simulator.base_url.startswith("http://127.0.0.1:")
    assert simulator.api_url == f"{simulator.base_url}/v1"
    client = httpx.Client(base_url=simulator.api_url, headers={"User-Agent": "t/1 (K1000)"})
    tokens = client.post("/login", json={"username": "K1000/ctiboard", "password": "secret"})
    assert tokens.status_code == 200
    headers = {"Authorization": f"Bearer {tokens.json()['access-token']}"}

    data = client.get("/extensions/phone/data", headers=headers).json()

    assert [entry["extension_number"] for entry in data] == ["100", "101", "102", "103", "104"]
    info = simulator.control.tenant("K1000")
    assert (info["seed"], info["traffic"]["rate"]) == ("7/K1000", 1.0)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_command_exits_0_on_sigterm_and_sigint(sig: signal.Signals) -> None:
    process = SimulatorProcess("--token-ttl", "60", "--rate", "0")
    with process:
        assert process.control.tenants() == []

        assert process.stop(sig=sig) == 0
    first, second = process.output.splitlines()[:2]
    assert first.startswith("NFON API base URL: http://127.0.0.1:") and first.endswith("/v1")
    assert second.startswith("listening on http://127.0.0.1:")


def test_a_bad_tenant_flag_fails_with_the_process_output() -> None:
    with pytest.raises(RuntimeError) as failure, SimulatorProcess("--tenant", "K1000:nocount"):
        pass

    assert "--tenant" in str(failure.value)


def test_a_client_without_v1_in_its_base_url_is_told_where_the_api_is(
    simulator: SimulatorProcess,
) -> None:
    login = httpx.post(f"{simulator.base_url}/login", json={})

    assert login.status_code == 404
    assert "/v1/login" in login.json()["error"]
    assert httpx.get(f"{simulator.base_url}/elsewhere").json() == {"error": "not found"}


# --- traffic flags: each one's effect on the streams -------------------------------------------

NANOS_WITH_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}[+-]\d\d:\d\d$")
MILLIS_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
TENANT = ("--tenant", "K1000:K1000/api:secret:40", "--rate", "0")


def _frames(
    process: SimulatorProcess, path: str, until: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """Frames of one of tenant K1000's SSE streams, up to the first that ``until`` accepts."""
    headers = {"User-Agent": "t/1 (K1000)"}
    with httpx.Client(base_url=process.api_url, headers=headers, timeout=10) as client:
        login = client.post("/login", json={"username": "K1000/api", "password": "secret"})
        client.headers["Authorization"] = f"Bearer {login.json()['access-token']}"
        frames: list[dict[str, Any]] = []
        with client.stream("GET", path, headers={"Accept": "text/event-stream"}) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    frames.append(json.loads(line.removeprefix("data: ")))
                    if until(frames[-1]):
                        break
    return frames


def _states(process: SimulatorProcess) -> list[dict[str, Any]]:
    """The state stream's bootstrap: one frame per extension, 40 in all."""
    count = iter(range(1, 41))
    return _frames(process, "/extensions/phone/states", lambda frame: next(count) == 40)


def _answered_call(process: SimulatorProcess) -> tuple[list[str], str]:
    """An inbound call to 100 answered and hung up: the call stream's states, and 100's line
    while the call was up."""
    frames: list[dict[str, Any]] = []
    reader = threading.Thread(
        target=lambda: frames.extend(
            _frames(process, "/extensions/phone/calls", lambda frame: frame["state"] == "hangup")
        )
    )
    reader.start()
    deadline = time.monotonic() + 10
    while process.control.counters("K1000")["open_streams"]["calls"] == 0:
        assert time.monotonic() < deadline, "the call stream did not open"
        time.sleep(0.02)
    call = process.control.ring("K1000", "4930123456", "100")
    process.control.answer("K1000", call["uuid"])
    line = process.control.states("K1000")[0]["line"]
    process.control.hangup("K1000", call["uuid"])
    reader.join(10)
    return [frame["state"] for frame in frames], line


def test_the_spec_profile_sends_only_what_the_spec_documents() -> None:
    with SimulatorProcess(*TENANT) as process:
        states = _states(process)
        calls, line = _answered_call(process)

    assert all(NANOS_WITH_OFFSET.match(state["updated"]) for state in states)
    assert {state["presence"] for state in states} - {"available", "offline"}
    assert calls == ["ring", "answer", "hangup"]
    assert line == "in-use"


def test_the_realistic_profile_sends_what_real_nfon_sends() -> None:
    with SimulatorProcess(*TENANT, "--profile", "realistic") as process:
        states = _states(process)
        calls, line = _answered_call(process)
        oddities = process.control.oddities("K1000")

    stamps = [state["updated"] for state in states]
    assert any(NANOS_WITH_OFFSET.match(stamp) for stamp in stamps)
    assert any(MILLIS_UTC.match(stamp) for stamp in stamps)
    assert calls == ["ring", "answer", "bridge", "hangup"]
    assert line == "busy"
    assert oddities == dict.fromkeys(oddities, True)  # late_dial and hunt_group too


def test_one_oddity_can_be_switched_on_alone() -> None:
    with SimulatorProcess(*TENANT, "--oddity", "bridge") as process:
        calls, line = _answered_call(process)
        oddities = process.control.oddities("K1000")

    assert calls == ["ring", "answer", "bridge", "hangup"]
    assert line == "in-use"
    assert [name for name, on in oddities.items() if on] == ["bridge"]


def test_without_extended_presence_only_available_and_offline_are_sent() -> None:
    with SimulatorProcess(*TENANT, "--no-extended-presence") as process:
        states = _states(process)

    assert {state["presence"] for state in states} <= {"available", "offline"}
    assert len(states) == 40


def test_an_unknown_profile_or_oddity_is_refused() -> None:
    for flags in (("--profile", "chaotic"), ("--oddity", "sparkles")):
        with pytest.raises(RuntimeError) as failure, SimulatorProcess(*TENANT, *flags):
            pass
        assert "invalid choice" in str(failure.value)
