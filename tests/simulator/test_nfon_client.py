"""An NFON client written from the spec alone (plain httpx, not ctiboard's CTIClient) against
``manage.py simulate``, configured with nothing but the base URL the command prints."""

import json
import queue
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ctiboard.simulator.testing import SimulatorProcess

ACCOUNT, USERNAME, PASSWORD = "K4711", "K4711/crm", "s3cret"
AGENT = f"spec-client/2.1 ({ACCOUNT})"  # NFON asks for <product>/<version> (<K-Account>)


class SseReader:
    """Reads one SSE stream in a thread; its `data:` frames arrive on a queue."""

    def __init__(self, client: httpx.Client, path: str) -> None:
        self.frames: queue.Queue[dict[str, Any]] = queue.Queue()
        self.opened = threading.Event()
        self.closing = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(client, path), daemon=True)
        self._thread.start()
        assert self.opened.wait(10), f"{path} did not open"

    def _read(self, client: httpx.Client, path: str) -> None:
        headers = {"Accept": "text/event-stream"}
        try:
            with client.stream("GET", path, headers=headers, timeout=None) as response:
                assert response.status_code == 200
                self.opened.set()
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        self.frames.put(json.loads(line.removeprefix("data:").strip()))
        except httpx.HTTPError:
            if not self.closing.is_set():
                raise

    def close(self) -> None:
        """Expect the end: the stream goes when the simulator stops (a daemon thread)."""
        self.closing.set()

    def next(self) -> dict[str, Any]:
        return self.frames.get(timeout=10)

    def until(self, state: str) -> list[dict[str, Any]]:
        seen = [self.next()]
        while seen[-1]["state"] != state:
            seen.append(self.next())
        return seen


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorProcess]:
    with SimulatorProcess("--tenant", f"{ACCOUNT}:{USERNAME}:{PASSWORD}:8", "--rate", "0") as sim:
        yield sim


def test_a_client_configured_with_the_printed_base_url_works_end_to_end(
    simulator: SimulatorProcess,
) -> None:
    printed = [line for line in simulator.output.splitlines() if "base URL" in line]
    base_url = printed[0].rsplit(" ", 1)[1]
    assert base_url.endswith("/v1")
    client = httpx.Client(base_url=base_url, headers={"User-Agent": AGENT}, timeout=10)

    tokens = client.post("/login", json={"username": USERNAME, "password": PASSWORD}).json()
    refreshed = client.put(
        "/login", headers={"Authorization": f"Bearer {tokens['refresh-token']}"}
    ).json()
    assert set(refreshed) == {"access-token", "refresh-token"}
    client.headers["Authorization"] = f"Bearer {refreshed['access-token']}"

    data = client.get("/extensions/phone/data").json()
    numbers = [entry["extension_number"] for entry in data]
    assert len(numbers) == 8 and data[0]["uuid"] == f"{numbers[0]}@{ACCOUNT}"
    snapshot = client.get(
        "/extensions/phone/states",
        params={"extension": numbers[:2]},
        headers={"Accept": "application/json"},
    ).json()
    assert [state["extension"] for state in snapshot] == numbers[:2]

    states = SseReader(client, "/extensions/phone/states")
    assert sorted(states.next()["extension"] for _ in numbers) == sorted(numbers)
    calls = SseReader(client, "/extensions/phone/calls")
    simulator.control.set_state(ACCOUNT, numbers[3], presence="dnd")
    changed = states.next()
    assert (changed["extension"], changed["presence"]) == (numbers[3], "dnd")

    # Click-to-dial from the first extension to an external number, cancelled while the
    # caller's phone rings.
    start = client.post(
        "/extensions/phone/calls",
        json={"caller": numbers[0], "callee": "4989123456", "callee_context": "global"},
        headers={"Accept": "application/json"},
    )
    assert start.status_code == 202 and start.json()["state"] == "start"
    call_uuid = start.json()["uuid"]
    leg = calls.until("caller-ring")
    assert {frame["uuid"] for frame in leg} == {call_uuid}
    assert client.delete(f"/extensions/phone/calls/{call_uuid}").status_code == 204
    assert calls.until("hangup")[-1]["uuid"] == call_uuid
    assert client.delete(f"/extensions/phone/calls/{call_uuid}").status_code == 404

    counters = simulator.control.counters(ACCOUNT)
    assert counters["non_conforming_user_agents"] == 0
    assert counters["open_streams"] == {"states": 1, "calls": 1, "originate": 0}
    states.close()
    calls.close()
    client.close()
