"""An NFON client written from the spec alone (tests/spec_client.py: plain httpx, not ctiboard's
CTIClient) against ``manage.py simulate``, configured with nothing but the base URL the command
prints. The same client drives ctiboard's gateway in tests/gateway/test_spec_client.py."""

import asyncio
from collections.abc import Iterator

import pytest

from ctiboard.simulator.testing import SimulatorProcess
from tests.spec_client import SpecClient

ACCOUNT, USERNAME, PASSWORD = "K4711", "K4711/crm", "s3cret"


@pytest.fixture(scope="module")
def simulator() -> Iterator[SimulatorProcess]:
    with SimulatorProcess("--tenant", f"{ACCOUNT}:{USERNAME}:{PASSWORD}:8", "--rate", "0") as sim:
        yield sim


async def test_a_client_configured_with_the_printed_base_url_works_end_to_end(
    simulator: SimulatorProcess,
) -> None:
    printed = [line for line in simulator.output.splitlines() if "base URL" in line]
    base_url = printed[0].rsplit(" ", 1)[1]
    assert base_url.endswith("/v1")
    async with SpecClient(base_url, ACCOUNT) as client:
        tokens = await client.login(USERNAME, PASSWORD)
        refreshed = await client.refresh(tokens["refresh-token"])
        assert set(refreshed) == {"access-token", "refresh-token"}

        data = await client.data()
        numbers = [entry["extension_number"] for entry in data]
        assert len(numbers) == 8 and data[0]["uuid"] == f"{numbers[0]}@{ACCOUNT}"
        snapshot = await client.snapshot(numbers[:2])
        assert [state["extension"] for state in snapshot] == numbers[:2]

        async with client.states() as states, client.calls() as calls:
            assert sorted(s["extension"] for s in await states.take(8)) == sorted(numbers)
            simulator.control.set_state(ACCOUNT, numbers[3], presence="dnd")
            changed = await asyncio.wait_for(states.next(), 10)
            assert (changed["extension"], changed["presence"]) == (numbers[3], "dnd")

            # Click-to-dial from the first extension to an external number, cancelled while
            # the caller's phone rings.
            start = await client.originate(
                {"caller": numbers[0], "callee": "4989123456", "callee_context": "global"}
            )
            assert start.status_code == 202 and start.json()["state"] == "start"
            call_uuid = start.json()["uuid"]
            leg = await asyncio.wait_for(calls.until("caller-ring"), 10)
            assert {frame["uuid"] for frame in leg} == {call_uuid}
            assert (await client.cancel(call_uuid)).status_code == 204
            assert (await asyncio.wait_for(calls.until("hangup"), 10))[-1]["uuid"] == call_uuid
            assert (await client.cancel(call_uuid)).status_code == 404

            counters = simulator.control.counters(ACCOUNT)
            assert counters["non_conforming_user_agents"] == 0
            assert counters["open_streams"] == {"states": 1, "calls": 1, "originate": 0}
