"""The control API's tenant lifecycle, settings, traffic and input validation."""

from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest

from ctiboard.simulator.control import SimulatorControl, SimulatorControlError

from .conftest import Tenant


def test_tenants_are_created_listed_changed_and_deleted(
    control: SimulatorControl, make_tenant: Callable[..., Tenant]
) -> None:
    tenant = make_tenant(12, seed=99, traffic_rate=0.5, token_ttl=60.0, extended_presence=False)

    info = control.tenant(tenant.account)
    assert info["extensions"] == 12 and info["seed"] == 99
    assert info["traffic"]["rate"] == 0.5 and info["extended_presence"] is False
    assert tenant.account in {listed["account"] for listed in control.tenants()}
    token = tenant.login()["access-token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["exp"] - claims["iat"], claims["extended_presence"]) == (60, False)

    control.update_tenant(tenant.account, token_ttl=30.0, keepalive=1.0)
    claims = jwt.decode(tenant.login()["access-token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 30
    assert control.tenant(tenant.account)["keepalive"] == 1.0


def test_a_deleted_tenant_is_gone_with_its_tokens(control: SimulatorControl) -> None:
    control.create_tenant("K7777", "K7777/gone", "secret", extensions=2)
    client = httpx.Client(base_url=f"{control.base_url}/v1")
    token = client.post("/login", json={"username": "K7777/gone", "password": "secret"}).json()

    control.delete_tenant("K7777")

    with pytest.raises(SimulatorControlError) as missing:
        control.tenant("K7777")
    assert missing.value.status == 404
    headers = {"Authorization": f"Bearer {token['access-token']}"}
    assert client.get("/extensions/phone/data", headers=headers).status_code == 401
    login = client.post("/login", json={"username": "K7777/gone", "password": "secret"})
    assert login.status_code == 401


def test_duplicate_accounts_and_usernames_get_409(
    control: SimulatorControl, tenant: Tenant
) -> None:
    for account, username in [(tenant.account, "K8888/other"), ("K8888", tenant.username)]:
        with pytest.raises(SimulatorControlError) as conflict:
            control.create_tenant(account, username, "secret")
        assert conflict.value.status == 409


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"username": "K1/u", "password": "p"},
        {"account": "1234", "username": "K1/u", "password": "p"},
        {"account": "K8000", "username": "", "password": "p"},
        {"account": "K8000", "username": "K8000/u", "password": "p", "extensions": 0},
        {"account": "K8000", "username": "K8000/u", "password": "p", "extensions": "many"},
        {"account": "K8000", "username": "K8000/u", "password": "p", "extensions": [{}]},
        {
            "account": "K8000",
            "username": "K8000/u",
            "password": "p",
            "extensions": [{"number": "100"}, {"number": "100"}],
        },
        {"account": "K8000", "username": "K8000/u", "password": "p", "time_scale": 0},
        {"account": "K8000", "username": "K8000/u", "password": "p", "traffic_rate": -1},
        {"account": "K8000", "username": "K8000/u", "password": "p", "seed": "x"},
        {"account": "K8000", "username": "K8000/u", "password": "p", "keepalive": "often"},
        {"account": "K8000", "username": "K8000/u", "password": "p", "keepalive": 1e-9},
        {"account": "K8000", "username": "K8000/u", "password": "p", "traffic_rate": 1e9},
    ],
)
def test_invalid_tenant_definitions_get_400(control: SimulatorControl, body: Any) -> None:
    response = httpx.post(f"{control.base_url}/_sim/tenants", json=body)

    assert response.status_code == 400
    assert response.json()["error"]
    assert "K8000" not in {tenant["account"] for tenant in control.tenants()}


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "", {"time_scale": 0}),
        ("PATCH", "", {"colour": 1.0}),
        ("PUT", "/extensions/100/state", {}),
        ("PUT", "/extensions/100/state", {"line": 7}),
        ("PUT", "/extensions/100/behaviour", {"mode": "dance"}),
        ("PUT", "/extensions/100/behaviour", {"answer_after": -1}),
        ("PUT", "/traffic", {"rate": "fast"}),
        ("PUT", "/traffic", {"rate": 5000}),
        ("PATCH", "", {"keepalive": 0}),
        ("PUT", "/oddities", {"teleport": True}),
        ("PUT", "/oddities", {"bridge": "yes"}),
        ("POST", "/calls", {"from": "4930123456", "to": 100}),
        ("POST", "/calls/x/answer", b"{broken"),
    ],
)
def test_invalid_control_requests_get_400(
    control: SimulatorControl, tenant: Tenant, method: str, path: str, body: Any
) -> None:
    url = f"{control.base_url}/_sim/tenants/{tenant.account}{path}"
    content = body if isinstance(body, bytes) else None
    json_body = None if isinstance(body, bytes) else body

    response = httpx.request(method, url, json=json_body, content=content)

    assert response.status_code == 400
    assert response.json()["error"]


def test_unknown_targets_get_404(control: SimulatorControl, tenant: Tenant) -> None:
    for action in (
        lambda: control.tenant("K404"),
        lambda: control.set_state(tenant.account, "999", line="idle"),
        lambda: control.set_behaviour(tenant.account, "999"),
        lambda: control.hangup(tenant.account, "no-such-call"),
    ):
        with pytest.raises(SimulatorControlError) as error:
            action()
        assert error.value.status == 404


def test_traffic_is_paused_resumed_and_rated_over_http(
    control: SimulatorControl, tenant: Tenant
) -> None:
    assert control.traffic(tenant.account) == {"rate": 0.0, "paused": False, "actions": 0}

    assert control.set_traffic(tenant.account, rate=3.5)["rate"] == 3.5
    assert control.pause_traffic(tenant.account)["paused"] is True
    assert control.resume_traffic(tenant.account)["paused"] is False
    assert control.counters(tenant.account)["traffic_actions"] >= 0


def test_behaviours_and_oddities_round_trip(control: SimulatorControl, tenant: Tenant) -> None:
    behaviour = control.set_behaviour(tenant.account, "100", "reject", answer_after=0.5)
    remote = control.set_remote_behaviour(tenant.account, "4989123456", hangup_after=None)
    oddities = control.set_oddities(tenant.account, bridge=True, line_busy=True)

    assert behaviour == {"mode": "reject", "answer_after": 0.5, "hangup_after": 60.0}
    assert remote == {"mode": "answer", "answer_after": 3.0, "hangup_after": None}
    assert oddities == {
        "line_busy": True,
        "bridge": True,
        "late_dial": False,
        "hunt_group": False,
        "mixed_timestamps": False,
    }
    assert control.oddities(tenant.account) == oddities


def test_a_tenant_can_be_created_with_a_profile_or_with_oddities(
    control: SimulatorControl,
) -> None:
    realistic = control.create_tenant("K7801", "K7801/api", "pw", oddities="realistic")
    chosen = control.create_tenant("K7802", "K7802/api", "pw", oddities={"bridge": True})
    try:
        assert all(realistic["oddities"].values())
        assert [name for name, on in chosen["oddities"].items() if on] == ["bridge"]
        for oddities in ("chaotic", {"sparkles": True}, {"bridge": "yes"}, ["bridge"]):
            with pytest.raises(SimulatorControlError) as refused:
                control.create_tenant("K7803", "K7803/api", "pw", oddities=oddities)  # type: ignore[arg-type]
            assert refused.value.status == 400
        assert "K7803" not in [tenant["account"] for tenant in control.tenants()]
    finally:
        control.delete_tenant("K7801")
        control.delete_tenant("K7802")
