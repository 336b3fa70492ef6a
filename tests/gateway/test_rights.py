"""Rights changed while a tool's stream is open take effect on it at once: extensions granted
are sent, extensions taken away are no longer, a deactivated user's stream ends."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from ctiboard.tenancy.models import Membership
from tests.board.support import apply, state
from tests.conftest import Company
from tests.gateway.support import api_token, gateway_url, serving
from tests.spec_client import SpecClient

pytestmark = pytest.mark.django_db(transaction=True)


async def test_rights_and_deactivation_reach_an_open_stream(member: User, company: Company) -> None:
    _, secret = await api_token(member, company.tenant)
    membership = await Membership.objects.aget(user=member)
    async with (
        serving() as host,
        SpecClient(gateway_url(host, company.tenant), company.tenant.account) as client,
    ):
        await client.login("member", secret)
        async with client.states() as states:
            assert {s["extension"] for s in await states.take(2)} == {"101", "102"}

            # 103 granted: its state comes at once; 102 taken away: its changes stop.
            await sync_to_async(membership.extensions.add)(company.extensions[3])
            granted = await asyncio.wait_for(states.next(), 2)
            assert granted["extension"] == "103"
            await sync_to_async(membership.extensions.remove)(company.extensions[2])
            # A grant after it: once its state arrives, the stream has applied both.
            await sync_to_async(membership.extensions.add)(company.extensions[4])
            assert (await asyncio.wait_for(states.next(), 2))["extension"] == "104"
            await apply(company, state("102", "ringing"), state("101", "ringing"))
            changed = await asyncio.wait_for(states.next(), 2)
            assert (changed["extension"], changed["line"]) == ("101", "ringing")

            member.is_active = False
            await sync_to_async(member.save)()
            rest = await asyncio.wait_for(states.end(), 1.0)
            assert not any('"102"' in json.dumps(frame) for frame in rest)
        assert (await client.http.get("/extensions/phone/data")).status_code == 401
