"""Login, refresh, JWKS, token rejection, tenant isolation, User-Agent and X-Request-Id."""

import time
import uuid
from collections.abc import Callable

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from ctiboard.simulator.control import SimulatorControlError
from ctiboard.simulator.testing import SimulatorProcess

from .conftest import Tenant, open_stream


def _claims(token: str) -> dict[str, object]:
    return jwt.decode(token, options={"verify_signature": False})


def test_login_returns_an_rs512_token_pair_with_nfon_claims(tenant: Tenant) -> None:
    tokens = tenant.login()

    assert set(tokens) == {"access-token", "refresh-token"}
    assert jwt.get_unverified_header(tokens["access-token"])["alg"] == "RS512"
    access, refresh = _claims(tokens["access-token"]), _claims(tokens["refresh-token"])
    assert access["customer"] == refresh["customer"] == tenant.account
    assert access["extended_presence"] is True
    assert access["token_type"] == "access" and refresh["token_type"] == "refresh"
    assert access["exp"] - access["iat"] == 300  # type: ignore[operator]
    assert refresh["exp"] - refresh["iat"] == 3600  # type: ignore[operator]
    assert access["jti"] != refresh["jti"]


def test_username_may_contain_a_slash(tenant: Tenant) -> None:
    assert "/" in tenant.username
    assert tenant.api().get("/extensions/phone/data").status_code == 200


def test_jwks_verifies_the_token_signature(tenant: Tenant) -> None:
    jwks = tenant.client().get("/.well-known/jwks.json").json()
    token = tenant.login()["access-token"]

    (key,) = jwks["keys"]
    assert (key["kty"], key["alg"], key["use"]) == ("RSA", "RS512", "sig")
    signing_key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(token, signing_key.key, algorithms=["RS512"])
    assert claims["customer"] == tenant.account


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[1, 2]",
        b'{"username": "K1/user"}',
        b'{"username": 1, "password": "secret"}',
        b'{"username": "K1/user", "password": null}',
    ],
)
def test_login_rejects_a_bad_body_with_400(tenant: Tenant, body: bytes) -> None:
    response = tenant.client().post("/login", content=body)

    assert response.status_code == 400
    assert response.json()["error"]


@pytest.mark.parametrize("wrong", ["username", "password"])
def test_login_rejects_bad_credentials_with_401(tenant: Tenant, wrong: str) -> None:
    credentials = {"username": tenant.username, "password": tenant.password, wrong: "nope"}

    response = tenant.client().post("/login", json=credentials)

    assert response.status_code == 401
    assert response.json()["error"]


def test_refresh_token_returns_a_new_pair(tenant: Tenant) -> None:
    tokens = tenant.login()

    response = tenant.client(tokens["refresh-token"]).put("/login")

    assert response.status_code == 200
    renewed = response.json()
    assert renewed["access-token"] != tokens["access-token"]
    assert tenant.client(renewed["access-token"]).get("/extensions/phone/data").status_code == 200
    assert tenant.client(renewed["refresh-token"]).put("/login").status_code == 200


def test_token_types_are_not_interchangeable(tenant: Tenant) -> None:
    tokens = tenant.login()

    assert tenant.client(tokens["access-token"]).put("/login").status_code == 401
    refresh_client = tenant.client(tokens["refresh-token"])
    assert refresh_client.get("/extensions/phone/data").status_code == 401


def _forgeries(tenant: Tenant, genuine: str) -> dict[str, str | None]:
    claims = _claims(genuine)
    kid = jwt.get_unverified_header(genuine)["kid"]
    stranger_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    header, _, signature = genuine.split(".")
    # Another tenant's claims under the genuine signature.
    hijacked = jwt.encode({**claims, "customer": "K1000"}, "k" * 64, algorithm="HS512")
    other_payload = hijacked.split(".")[1]
    return {
        "missing": None,
        "garbage": "not-a-jwt",
        "unsigned": jwt.encode(claims, "", algorithm="none"),
        "hmac": jwt.encode(claims, "never-the-servers-secret" * 3, algorithm="HS512"),
        "other key": jwt.encode(claims, stranger_key, algorithm="RS512", headers={"kid": kid}),
        "tampered": f"{header}.{other_payload}.{signature}",
    }


@pytest.mark.parametrize(
    "forgery", ["missing", "garbage", "unsigned", "hmac", "other key", "tampered"]
)
def test_missing_and_forged_tokens_get_401(tenant: Tenant, forgery: str) -> None:
    token = _forgeries(tenant, tenant.login()["access-token"])[forgery]

    for method, path in [
        ("GET", "/extensions/phone/data"),
        ("GET", "/extensions/phone/states"),
        ("GET", "/extensions/phone/calls"),
        ("POST", "/extensions/phone/calls"),
        ("DELETE", f"/extensions/phone/calls/{uuid.uuid4()}"),
        ("PUT", "/login"),
    ]:
        response = tenant.client(token).request(method, path)
        assert response.status_code == 401, (method, path)
        assert response.json()["error"]


def test_an_expired_access_token_gets_401(make_tenant: Callable[..., Tenant]) -> None:
    tenant = make_tenant(token_ttl=3.0)  # long enough to use it once on a loaded machine
    token = tenant.login()["access-token"]
    client = tenant.client(token)
    assert client.get("/extensions/phone/data").status_code == 200

    expires_at = _claims(token)["exp"]
    assert isinstance(expires_at, float | int)
    time.sleep(max(0.0, expires_at - time.time()) + 0.05)

    response = client.get("/extensions/phone/data")
    assert response.status_code == 401
    assert "expired" in response.json()["error"]


def test_one_tenant_never_sees_or_touches_another(make_tenant: Callable[..., Tenant]) -> None:
    alpha = make_tenant([{"number": "100", "name": "Alpha One"}, {"number": "101", "name": "A2"}])
    beta = make_tenant([{"number": "100", "name": "Beta One"}, {"number": "200", "name": "B2"}])
    alpha_api, beta_api = alpha.api(), beta.api()

    data = alpha_api.get("/extensions/phone/data").json()
    assert {entry["uuid"] for entry in data} == {f"100@{alpha.account}", f"101@{alpha.account}"}
    snapshot = alpha_api.get("/extensions/phone/states", headers={"Accept": "application/json"})
    assert {state["customer"] for state in snapshot.json()} == {alpha.account}

    states = open_stream(alpha_api, "GET", "/extensions/phone/states")
    calls = open_stream(alpha_api, "GET", "/extensions/phone/calls")
    assert {event["customer"] for event in states.take(2)} == {alpha.account}
    # Beta's activity comes first; alpha's streams must skip straight to alpha's own.
    beta.control.set_state(beta.account, "100", presence="dnd")
    beta.control.ring(beta.account, "4930123456", "200")
    alpha.control.set_state(alpha.account, "101", presence="away")
    alpha.control.ring(alpha.account, "4930123456", "101")
    change = states.next()
    assert (change["customer"], change["extension"], change["presence"]) == (
        alpha.account,
        "101",
        "away",
    )
    call_event = calls.next()
    assert (call_event["customer"], call_event["extension"]) == (alpha.account, "101")

    # Beta's click-to-dial cannot be cancelled with alpha's token.
    beta.control.set_behaviour(beta.account, "100", "never")
    started = beta_api.post("/extensions/phone/calls", json={"caller": "100", "callee": "200"})
    call_uuid = started.json()["uuid"]
    assert alpha_api.delete(f"/extensions/phone/calls/{call_uuid}").status_code == 404
    assert beta_api.delete(f"/extensions/phone/calls/{call_uuid}").status_code == 204


def test_non_conforming_user_agents_are_answered_counted_and_logged(
    simulator: SimulatorProcess, tenant: Tenant
) -> None:
    token = tenant.login()["access-token"]
    conforming = tenant.client(token)
    assert conforming.get("/extensions/phone/data").status_code == 200
    assert tenant.control.counters(tenant.account)["non_conforming_user_agents"] == 0

    for agent in ["python-httpx/0.28.1", "ctiboard/1.0 (K0000)", "ctiboard (K1000)"]:
        response = tenant.client(token, **{"User-Agent": agent}).get("/extensions/phone/data")
        assert response.status_code == 200

    assert tenant.control.counters(tenant.account)["non_conforming_user_agents"] == 3
    deadline = time.monotonic() + 5
    while "non-conforming User-Agent 'python-httpx/0.28.1'" not in simulator.output:
        assert time.monotonic() < deadline, simulator.output
        time.sleep(0.05)


def test_every_response_carries_an_x_request_id(tenant: Tenant) -> None:
    api, anonymous = tenant.api(), tenant.client()
    responses = [
        api.get("/extensions/phone/data"),
        anonymous.get("/extensions/phone/data"),  # 401
        anonymous.get("/.well-known/jwks.json"),
        anonymous.get("/no/such/path"),  # 404
        anonymous.patch("/login"),  # 405
        api.post("/extensions/phone/calls", json={}),  # 400
        api.delete(f"/extensions/phone/calls/{uuid.uuid4()}"),  # 404
        httpx.get(f"{tenant.control.base_url}/_sim/tenants/{tenant.account}/counters"),
    ]
    stream = open_stream(api, "GET", "/extensions/phone/calls")

    ids = [response.headers["x-request-id"] for response in [*responses, stream.response]]
    assert all(ids) and len(set(ids)) == len(ids)
    for response in responses[1:7]:
        if response.status_code >= 400:
            assert response.json()["error"]


def test_what_the_spec_leaves_open_about_refresh_is_as_documented(tenant: Tenant) -> None:
    # ctiboard/simulator/README.md: tokens are stateless, so a refresh revokes nothing.
    first = tenant.login()
    second = tenant.client(first["refresh-token"]).put("/login").json()

    assert tenant.client(first["access-token"]).get("/extensions/phone/data").status_code == 200
    assert tenant.client(first["refresh-token"]).put("/login").status_code == 200
    assert tenant.client(second["access-token"]).get("/extensions/phone/data").status_code == 200


@pytest.mark.parametrize("skew", [-600.0, 600.0])
def test_a_pbx_clock_off_the_true_time_stamps_and_checks_its_tokens_by_that_clock(
    tenant: Tenant, skew: float
) -> None:
    # A worker whose clock is off NFON's sees exactly this: tokens dated minutes away from its
    # own time, valid for their lifetime by the PBX's clock.
    tenant.control.update_tenant(tenant.account, clock_skew=skew)
    assert tenant.control.tenant(tenant.account)["clock_skew"] == skew
    token = tenant.login()["access-token"]
    claims = _claims(token)
    assert abs(claims["iat"] - (time.time() + skew)) < 5  # type: ignore[operator]
    assert claims["exp"] - claims["iat"] == 300  # type: ignore[operator]

    with tenant.client(token) as client:
        # Valid by the PBX's clock, whatever the true time says (exp is 5 minutes past at -600).
        assert client.get("/extensions/phone/data").status_code == 200
        # The PBX's clock jumps past the token's lifetime: expired.
        tenant.control.update_tenant(tenant.account, clock_skew=skew + 301)
        assert client.get("/extensions/phone/data").status_code == 401


def test_a_clock_skew_beyond_a_day_is_refused(tenant: Tenant) -> None:
    with pytest.raises(SimulatorControlError) as refused:
        tenant.control.update_tenant(tenant.account, clock_skew=-86_401)
    assert refused.value.status == 400 and "clock_skew" in str(refused.value)
