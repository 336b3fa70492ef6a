"""`python manage.py simulate` as a process: flags, the listening line, clean exits."""

import signal

import httpx
import pytest

from ctiboard.simulator.testing import SimulatorProcess


def test_tenants_from_the_command_line_are_served(simulator: SimulatorProcess) -> None:
    # The session's simulator runs with --seed 7 --tenant K1000:K1000/ctiboard:secret:5.
    assert simulator.base_url.startswith("http://127.0.0.1:")
    client = httpx.Client(base_url=simulator.base_url, headers={"User-Agent": "t/1 (K1000)"})
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
    assert process.output.splitlines()[0].startswith("listening on http://127.0.0.1:")


def test_a_bad_tenant_flag_fails_with_the_process_output() -> None:
    with pytest.raises(RuntimeError) as failure, SimulatorProcess("--tenant", "K1000:nocount"):
        pass

    assert "--tenant" in str(failure.value)
