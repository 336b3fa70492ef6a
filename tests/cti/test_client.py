"""The CTI client against the running simulator, over real sockets."""

import asyncio

import jwt
import pytest

from ctiboard import __version__
from ctiboard.cti.client import AuthenticationFailed, CallNotFound, CTIClient, user_agent
from ctiboard.cti.events import StateEvent
from tests.conftest import Pbx


async def test_login_and_refresh_give_fresh_token_pairs(pbx: Pbx) -> None:
    async with pbx.client() as client:
        first = await client.login()
        claims = jwt.decode(first.access, options={"verify_signature": False})
        assert claims["customer"] == pbx.account
        second = await client.refresh()
        assert second.access != first.access and second.refresh != first.refresh


async def test_tokens_verify_against_the_published_jwks(pbx: Pbx) -> None:
    async with pbx.client() as client:
        tokens = await client.login()
    jwks = jwt.PyJWKClient(f"{pbx.base_url}/.well-known/jwks.json")
    key = jwks.get_signing_key_from_jwt(tokens.access)
    claims = jwt.decode(tokens.access, key.key, algorithms=["RS512"])
    assert claims["customer"] == pbx.account


async def test_wrong_password_fails_at_once(pbx: Pbx) -> None:
    async with CTIClient(pbx.base_url, pbx.username, "wrong", pbx.account) as client:
        with pytest.raises(AuthenticationFailed):
            await client.extensions()


async def test_every_request_names_product_version_and_account(pbx: Pbx) -> None:
    assert user_agent(pbx.account) == f"ctiboard/{__version__} ({pbx.account})"
    async with pbx.client() as client:
        await client.extensions()
        await client.states_snapshot()
    assert pbx.control.counters(pbx.account)["non_conforming_user_agents"] == 0
    assert pbx.control.counters(pbx.account)["requests"] >= 3


async def test_extension_list_and_snapshot(pbx: Pbx) -> None:
    async with pbx.client() as client:
        extensions = await client.extensions()
        snapshot = await client.states_snapshot()
        two = await client.states_snapshot([extensions[0].number, extensions[1].number])
    assert len(extensions) == 8 and all(e.name for e in extensions)
    truth = pbx.truth()
    assert {s.extension: (s.line, s.presence) for s in snapshot} == truth
    assert sorted(s.extension for s in two) == sorted(e.number for e in extensions[:2])


async def test_state_stream_bootstraps_then_streams_changes(pbx: Pbx) -> None:
    async with pbx.client() as client:
        numbers = [e.number for e in await client.extensions()]
        stream = client.stream_states()
        bootstrap: list[StateEvent] = [await asyncio.wait_for(anext(stream), 5) for _ in numbers]
        assert sorted(e.extension for e in bootstrap) == sorted(numbers)
        await asyncio.to_thread(pbx.control.set_state, pbx.account, numbers[3], line="busy")
        change = await asyncio.wait_for(anext(stream), 5)
        assert (change.extension, change.line) == (numbers[3], "busy")
        await stream.aclose()


async def test_expired_access_token_is_refreshed_transparently(pbx: Pbx) -> None:
    pbx.control.update_tenant(pbx.account, token_ttl=1.0)
    async with pbx.client() as client:
        first = await client.login()
        await asyncio.sleep(1.2)
        assert len(await client.extensions()) == 8
        assert client.tokens is not None and client.tokens.access != first.access


async def test_originate_answered_call_reports_every_step(pbx: Pbx) -> None:
    async with pbx.client() as client:
        caller, callee = [e.number for e in await client.extensions()][:2]
        states = [
            event.state
            async for event in client.originate_stream(
                caller, callee, caller_context=pbx.account, callee_context=pbx.account
            )
        ]
    assert states[0] == "start" and states[-1] == "end"
    assert states.index("caller-dial") < states.index("caller-answer") < states.index("dial")
    assert states.index("dial") < states.index("answer") < states.index("end")


async def test_originate_json_then_cancel(pbx: Pbx) -> None:
    async with pbx.client() as client:
        caller, callee = [e.number for e in await client.extensions()][:2]
        # The caller's phone keeps ringing, so the call stays cancellable.
        await asyncio.to_thread(pbx.control.set_behaviour, pbx.account, caller, "never")
        start = await client.originate(caller, callee, caller_context=pbx.account)
        assert start.state == "start" and start.uuid
        await client.cancel(start.uuid)
        with pytest.raises(CallNotFound):
            await client.cancel("00000000-0000-0000-0000-000000000000")


async def test_one_tenants_credentials_never_see_another_tenant(pbx: Pbx) -> None:
    other = f"{pbx.account}9"
    pbx.control.create_tenant(other, f"{other}/x", "other-secret", extensions=3, seed=5)
    try:
        async with pbx.client() as client:
            mine = {e.number for e in await client.extensions()}
            snapshot = await client.states_snapshot()
        assert all(s.customer in (None, pbx.account) for s in snapshot)
        async with CTIClient(pbx.base_url, f"{other}/x", "other-secret", other) as client:
            theirs = {e.uuid for e in await client.extensions()}
        assert all(uuid.endswith(other) for uuid in theirs)
        assert len(mine) == 8
    finally:
        pbx.control.delete_tenant(other)
