"""The gateway as an NFON client sees it: the spec client of tests/spec_client.py (the one that
also drives the simulator) against the whole application on a real socket, with the ingest
worker streaming the simulator, so live states flow PBX -> worker -> fan-out -> gateway."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from ctiboard.gateway.models import Scope
from ctiboard.ingest.stream import TenantIngest
from tests.conftest import Company, Pbx
from tests.gateway.support import api_token
from tests.ingest.support import control
from tests.spec_client import SpecClient

pytestmark = pytest.mark.django_db(transaction=True)


async def test_bob_sees_exactly_his_extensions(
    bob: User, pbx: Pbx, pbx_company: Company, live: tuple[str, TenantIngest]
) -> None:
    url, _ = live
    team = [e.number for e in pbx_company.extensions[:3]]
    other = pbx_company.extensions[5].number
    _, secret = await api_token(bob, pbx_company.tenant)
    async with SpecClient(url, pbx.account) as client:
        tokens = await client.login("bob", secret)
        refreshed = await client.refresh(tokens["refresh-token"])
        assert set(refreshed) == {"access-token", "refresh-token"}

        data = await client.data()
        assert [entry["extension_number"] for entry in data] == team
        assert data[0]["uuid"] == f"{team[0]}@{pbx.account}"
        snapshot = await client.snapshot([team[1], other])
        assert [state["extension"] for state in snapshot] == [team[1]]
        assert {s["extension"] for s in await client.snapshot()} == set(team)

        async with client.states() as states:
            bootstrap = await states.take(3)
            assert {s["extension"] for s in bootstrap} == set(team)
            assert all(s["customer"] == pbx.account for s in bootstrap)
            # A change bob may not see, then one he may: only the second reaches him.
            await control(pbx.control.set_state, pbx.account, other, presence="dnd")
            await control(pbx.control.set_state, pbx.account, team[2], presence="away")
            changed = await asyncio.wait_for(states.next(), 10)
            assert (changed["extension"], changed["presence"]) == (team[2], "away")


async def test_a_line_only_user_never_receives_a_partner_number(
    bob: User, line_only: User, pbx: Pbx, pbx_company: Company, live: tuple[str, TenantIngest]
) -> None:
    url, _ = live
    number = pbx_company.extensions[1].number
    caller = "4930123456"
    _, bobs = await api_token(bob, pbx_company.tenant)
    _, lines = await api_token(line_only, pbx_company.tenant)
    async with (
        SpecClient(url, pbx.account) as detailed,
        SpecClient(url, pbx.account) as plain,
    ):
        await detailed.login("bob", bobs)
        await plain.login("lineonly", lines)
        async with detailed.calls() as with_details, plain.calls() as without:
            call = await control(pbx.control.ring, pbx.account, caller, number)
            await control(pbx.control.hangup, pbx.account, call["uuid"])
            seen = await asyncio.wait_for(with_details.until("hangup"), 10)
            assert seen[0]["caller"] == caller and seen[0]["extension"] == number
            stripped = await asyncio.wait_for(without.until("hangup"), 10)
            assert [f["state"] for f in stripped] == [f["state"] for f in seen]
            assert all(
                set(f) <= {"uuid", "state", "updated", "extension", "customer"} for f in stripped
            )
            assert not any(caller in line for line in without.raw)


async def test_originate_needs_the_call_scope_and_cancel_ends_the_call(
    bob: User, pbx: Pbx, pbx_company: Company, live: tuple[str, TenantIngest]
) -> None:
    url, _ = live
    own, colleague = pbx_company.extensions[0].number, pbx_company.extensions[1].number
    _, reader = await api_token(bob, pbx_company.tenant)
    _, caller = await api_token(bob, pbx_company.tenant, Scope.CALL)
    body = {"caller": own, "callee": colleague}
    async with SpecClient(url, pbx.account) as client:
        await client.login("bob", reader)
        refused = await client.originate(body)
        assert refused.status_code == 403 and "scope" in refused.json()["error"]

        await client.login("bob", caller)
        await control(pbx.control.set_behaviour, pbx.account, own, mode="never")
        async with client.calls() as calls:
            start = await client.originate(body)
            assert start.status_code == 202, start.text
            assert start.json()["state"] == "start"
            call_uuid = start.json()["uuid"]
            leg = await asyncio.wait_for(calls.until("caller-ring"), 10)
            assert {frame["uuid"] for frame in leg} == {call_uuid}
            assert (await client.cancel(call_uuid)).status_code == 204
            assert (await asyncio.wait_for(calls.until("hangup"), 10))[-1]["uuid"] == call_uuid

        # Not his own extension as the caller, or a colleague he cannot see: refused.
        assert (await client.originate({**body, "caller": colleague})).status_code == 403
        invisible = {**body, "callee": pbx_company.extensions[6].number}
        assert (await client.originate(invisible)).status_code == 400


async def test_a_revoked_tokens_open_stream_ends_within_a_second(
    bob: User, pbx: Pbx, pbx_company: Company, live: tuple[str, TenantIngest]
) -> None:
    url, _ = live
    token, secret = await api_token(bob, pbx_company.tenant)
    async with SpecClient(url, pbx.account) as client:
        await client.login("bob", secret)
        async with client.states() as states:
            await states.take(3)
            await sync_to_async(token.revoke)()
            await asyncio.wait_for(states.end(), 1.0)
        assert (await client.http.get("/extensions/phone/data")).status_code == 401
