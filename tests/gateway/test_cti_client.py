"""ctiboard's own CTI client (the ingest worker's) consumes the gateway as it consumes NFON: one
ctiboard can feed another, configured with the gateway's base URL, a username and a token."""

import asyncio

import pytest
from django.contrib.auth.models import User

from ctiboard.cti.client import CTIClient
from ctiboard.cti.events import CallEvent, StateEvent
from ctiboard.gateway.models import Scope
from ctiboard.ingest.stream import TenantIngest
from tests.conftest import Company, Pbx
from tests.gateway.support import api_token
from tests.ingest.support import control

pytestmark = pytest.mark.django_db(transaction=True)


async def test_the_cti_client_reads_and_calls_through_the_gateway(
    bob: User,
    pbx: Pbx,
    pbx_company: Company,
    live: tuple[str, TenantIngest],
) -> None:
    url, _ = live
    team = [e.number for e in pbx_company.extensions[:3]]
    _, secret = await api_token(bob, pbx_company.tenant, Scope.CALL)
    async with CTIClient(url, "bob", secret, pbx.account) as client:
        assert [e.number for e in await client.extensions()] == team
        assert {s.extension for s in await client.states_snapshot()} == set(team)

        states: asyncio.Queue[StateEvent] = asyncio.Queue()
        opened = asyncio.Event()

        async def follow() -> None:
            async for event in client.stream_states(on_open=lambda _: opened.set()):
                await states.put(event)

        task = asyncio.create_task(follow())
        try:
            await asyncio.wait_for(opened.wait(), 10)
            bootstrap = [await asyncio.wait_for(states.get(), 10) for _ in team]
            assert {s.extension for s in bootstrap} == set(team)
            await control(pbx.control.set_state, pbx.account, team[1], presence="dnd")
            changed = await asyncio.wait_for(states.get(), 10)
            assert (changed.extension, changed.presence) == (team[1], "dnd")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        # Click-to-dial with its progress stream (the POST's SSE answer), cancelled while the
        # caller's phone rings.
        await control(pbx.control.set_behaviour, pbx.account, team[0], mode="never")
        progress = client.originate_stream(team[0], team[2])
        seen: list[CallEvent] = [await asyncio.wait_for(anext(progress), 10)]
        assert seen[0].state == "start"
        while seen[-1].state != "caller-ring":
            seen.append(await asyncio.wait_for(anext(progress), 10))
        await client.cancel(seen[0].uuid)
        while seen[-1].state != "end":
            seen.append(await asyncio.wait_for(anext(progress), 10))
        await progress.aclose()
        assert {e.uuid for e in seen} == {seen[0].uuid}
        assert (seen[-1].state, seen[-1].error) == ("end", "cancel")
