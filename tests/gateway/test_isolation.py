"""Every gateway route, for every kind of user: nobody learns through a tool what he may not see.

The application serves on a real socket; changes come from the ingest worker's writer (no
PBX: calls that get through to it fail with 502, which shows the gateway let them through)."""

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from ctiboard.calls.models import CallAttempt
from ctiboard.cti.events import CallEvent
from ctiboard.gateway.models import Scope
from ctiboard.ingest import writer
from tests.board.support import apply, state
from tests.conftest import Company, isolation_personas, make_user
from tests.gateway.support import api_token, gateway_url, serving
from tests.spec_client import SpecClient

pytestmark = pytest.mark.django_db(transaction=True)

PERSONAS = ["anonymous", "stranger", "outsider", "line_only", "full"]
PARTNER = "4930123456"
CALL_UUID = "715a1333-0174-40ea-8b38-67e289069476"


@pytest.fixture
def people(company: Company, other_company: Company) -> dict[str, tuple[User, Company] | None]:
    return {
        persona: None
        if user is None
        else (user, other_company if persona == "stranger" else company)
        for persona, user in isolation_personas(company, other_company).items()
    }


@pytest.fixture
async def client(
    request: pytest.FixtureRequest,
    people: dict[str, tuple[User, Company] | None],
    company: Company,
) -> AsyncIterator[SpecClient]:
    """The persona's tool at the company's gateway, logged in with a token of its own
    (the stranger's is of his own company's: it logs in there, then tries this one)."""
    persona = people[request.param]
    async with (
        serving() as host,
        SpecClient(gateway_url(host, company.tenant), company.tenant.account) as tool,
    ):
        if persona is not None:
            user, own_company = persona
            _, secret = await api_token(user, own_company.tenant, Scope.CALL)
            url = gateway_url(host, own_company.tenant)
            response = await tool.http.post(
                f"{url}/login", json={"username": user.username, "password": secret}
            )
            assert response.status_code == 200
            tool.bearer(response.json()["access-token"])
            if own_company is not company:
                # A token of another tenant does not log in here either.
                refused = await tool.http.post(
                    "/login", json={"username": user.username, "password": secret}
                )
                assert refused.status_code == 401
        yield tool


def personas() -> pytest.MarkDecorator:
    return pytest.mark.parametrize("client", PERSONAS, indirect=True, ids=PERSONAS)


def status_of(persona: str, seen: int) -> int:
    return 401 if persona in ("anonymous", "stranger") else seen


VISIBLE = {"anonymous": 0, "stranger": 0, "outsider": 0, "line_only": 6, "full": 6}


@personas()
async def test_data(client: SpecClient, request: pytest.FixtureRequest, company: Company) -> None:
    persona = request.node.callspec.params["client"]
    response = await client.http.get("/extensions/phone/data")
    assert response.status_code == status_of(persona, 200)
    if response.status_code == 200:
        assert len(response.json()) == VISIBLE[persona]
    else:
        assert company.extensions[0].name not in response.text


@personas()
async def test_snapshot(client: SpecClient, request: pytest.FixtureRequest) -> None:
    persona = request.node.callspec.params["client"]
    response = await client.http.get(
        "/extensions/phone/states",
        params={"extension": ["100", "103"]},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == status_of(persona, 200)
    if response.status_code == 200:
        assert len(response.json()) == min(VISIBLE[persona], 2)


class Frames:
    """The data lines of an open stream, read in the background as they come."""

    def __init__(self, stream: httpx.Response) -> None:
        self.lines: asyncio.Queue[str] = asyncio.Queue()
        self.task = asyncio.create_task(self._read(stream))

    async def _read(self, stream: httpx.Response) -> None:
        async for line in stream.aiter_lines():
            if line.startswith("data:"):
                await self.lines.put(line)

    async def take(self, count: int, timeout: float = 0.5) -> list[str]:
        """Up to ``count`` frames that arrive within ``timeout``."""
        taken: list[str] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(taken) < count:
            try:
                taken.append(await asyncio.wait_for(self.lines.get(), deadline - loop.time()))
            except TimeoutError:
                break
        return taken

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


@personas()
async def test_state_stream(
    client: SpecClient, request: pytest.FixtureRequest, company: Company
) -> None:
    persona = request.node.callspec.params["client"]
    headers = {"Accept": "text/event-stream"}
    async with client.http.stream("GET", "/extensions/phone/states", headers=headers) as stream:
        assert stream.status_code == status_of(persona, 200)
        if stream.status_code != 200:
            return
        frames = Frames(stream)
        assert len(await frames.take(6)) == VISIBLE[persona]
        await apply(company, state("103", "ringing"))
        pushed = await frames.take(1, timeout=2 if VISIBLE[persona] else 0.5)
        assert len(pushed) == (1 if VISIBLE[persona] else 0)
        await frames.close()


def _call(number: str, call_state: str) -> CallEvent:
    raw = {
        "uuid": CALL_UUID,
        "caller": PARTNER,
        "caller_context": "global",
        "callee": number,
        "state": call_state,
        "extension": number,
        "direction": "inbound",
        "updated": datetime.now().astimezone().isoformat(),
    }
    return CallEvent(
        uuid=CALL_UUID,
        state=call_state,
        caller=PARTNER,
        caller_context="global",
        callee=number,
        callee_context=None,
        extension=number,
        direction="inbound",
        error=None,
        customer=None,
        updated=None,
        raw=raw,
    )


@personas()
async def test_call_stream(
    client: SpecClient, request: pytest.FixtureRequest, company: Company
) -> None:
    persona = request.node.callspec.params["client"]
    headers = {"Accept": "text/event-stream"}
    async with client.http.stream("GET", "/extensions/phone/calls", headers=headers) as stream:
        assert stream.status_code == status_of(persona, 200)
        if stream.status_code != 200:
            return

        def ring() -> None:
            tenant_state = writer.load_state(company.tenant.pk)
            writer.apply(tenant_state, [_call("103", "ring")])

        reader = Frames(stream)
        await sync_to_async(ring)()
        frames = await reader.take(1, timeout=2 if VISIBLE[persona] else 0.5)
        await reader.close()
        assert len(frames) == (1 if VISIBLE[persona] else 0)
        assert all('"state":"ring"' in frame for frame in frames)
        assert any(PARTNER in frame for frame in frames) == (persona == "full")


EXPECTED_ORIGINATE = {
    "anonymous": 401,
    "stranger": 401,
    "outsider": 403,  # no own extension
    "line_only": 403,  # may not call
    "full": 502,  # let through: the PBX of this test is unreachable
}


@personas()
async def test_originate(
    client: SpecClient, request: pytest.FixtureRequest, company: Company
) -> None:
    persona = request.node.callspec.params["client"]
    own = {"full": "100", "line_only": "105"}.get(persona, "100")
    response = await client.originate({"caller": own, "callee": "103"})
    assert response.status_code == EXPECTED_ORIGINATE[persona], response.text
    attempts = await CallAttempt.objects.filter(callee="103").acount()
    assert attempts == (1 if persona == "full" else 0)


@personas()
async def test_cancel_someone_elses_call(
    client: SpecClient, request: pytest.FixtureRequest, company: Company
) -> None:
    persona = request.node.callspec.params["client"]
    owner_of_call = await sync_to_async(make_user)("caller")
    await CallAttempt.objects.acreate(
        tenant=company.tenant,
        user=owner_of_call,
        caller="100",
        callee="103",
        callee_context=company.tenant.account,
        uuid=CALL_UUID,
        status="ring",
    )
    response = await client.cancel(CALL_UUID)
    assert response.status_code == status_of(persona, 404)


@personas()
async def test_refresh(client: SpecClient, request: pytest.FixtureRequest) -> None:
    persona = request.node.callspec.params["client"]
    # An access token is no refresh token, nor the other way round.
    response = await client.http.put("/login")
    assert response.status_code == 401
    assert "access-token" not in response.text
    if persona in ("anonymous", "stranger"):
        assert (await client.http.get("/extensions/phone/data")).status_code == 401
