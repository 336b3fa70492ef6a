"""A worker clock minutes off the PBX's, refused logins, and streams that keep ending: the client
renews on the token's own lifetime, and no reconnect path loops.

The worker's clock is skewed by patching ``time`` as the client and tokens modules see it (the
simulator, a process of its own, keeps the true time). Counts are bounded generously: these tests
look at how often the client knocks, not at how fast anything is.
"""

import asyncio
import time
import types
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest

from ctiboard.cti import client as client_module
from ctiboard.cti import tokens as tokens_module
from ctiboard.cti.client import AuthenticationFailed, CTIClient
from ctiboard.cti.events import StateEvent
from ctiboard.cti.pacing import HEALTHY_STREAM_SECONDS, RECONNECT_CAP, RECONNECT_INTERVAL, Pacing
from ctiboard.cti.tokens import Tokens
from ctiboard.tenancy.models import ConnectionStatus
from tests.conftest import Company, Pbx
from tests.ingest.support import control, converged, eventually, running, status

TEN_MINUTES = 600.0
SKEWS = [pytest.param(TEN_MINUTES, id="ahead"), pytest.param(-TEN_MINUTES, id="behind")]


@pytest.fixture
def skewed(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[float]:
    """The client's wall clock ``request.param`` seconds off the true (and the PBX's) time."""
    skew = float(request.param)
    clock = types.SimpleNamespace(time=lambda: time.time() + skew, monotonic=time.monotonic)
    monkeypatch.setattr(client_module, "time", clock)
    monkeypatch.setattr(tokens_module, "time", clock)
    yield skew


def _claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


def _counters(pbx: Pbx) -> tuple[int, int]:
    counters = pbx.control.counters(pbx.account)
    return int(counters["streams_opened"]), int(counters["requests"])


# --- token lifetime -----------------------------------------------------------------------


def _pair(**claims: float) -> dict[str, str]:
    access = jwt.encode({"customer": "K1", **claims}, "unchecked", algorithm="HS256")
    return {"access-token": access, "refresh-token": "r"}


@pytest.mark.parametrize("skewed", SKEWS, indirect=True)
def test_the_lifetime_is_exp_minus_iat_counted_on_the_monotonic_clock(skewed: float) -> None:
    pbx_now = time.time()  # the PBX's clock; the client's is ten minutes off
    sent = time.monotonic()
    tokens = Tokens.from_response(_pair(iat=pbx_now, exp=pbx_now + 300), requested_at=sent)
    assert tokens.lifetime == 300 and tokens.refresh_margin == 30
    assert tokens.renew_at == sent + 270 and tokens.fresh()
    assert not tokens.fresh(sent + 271)


@pytest.mark.parametrize("skewed", SKEWS, indirect=True)
def test_without_iat_the_local_estimate_is_clamped(skewed: float) -> None:
    pbx_now = time.time()
    tokens = Tokens.from_response(_pair(exp=pbx_now + 300))
    # Ahead: the token looks 5 minutes expired, behind: 15 minutes long. Neither is believed.
    assert tokens.lifetime == (10.0 if skewed > 0 else 300.0)
    assert tokens.fresh()


def test_a_token_without_exp_is_short_lived() -> None:
    assert Tokens.from_response(_pair()).lifetime == 60.0


# --- streams against the simulator, the worker's clock skewed ------------------------------


@pytest.mark.parametrize("skewed", SKEWS, indirect=True)
async def test_a_skewed_client_renews_its_stream_before_the_token_expires(
    skewed: float, pbx: Pbx
) -> None:
    """A consumer that reconnects the moment a stream ends (the worker does so after a renewal)
    gets a handful of streams in a few seconds, each renewed while its token is still valid."""
    await control(pbx.control.update_tenant, pbx.account, token_ttl=3.0)
    number = (await control(pbx.control.states, pbx.account))[2]["extension"]
    opens: list[dict[str, Any]] = []  # the claims of the token each stream was opened with
    renewals: list[tuple[float, float]] = []  # (true time the stream ended, its token's exp)
    received: list[StateEvent] = []
    window = 5.0

    async with pbx.client() as client:
        before = await control(_counters, pbx)

        def opened(_: float) -> None:
            assert client.tokens is not None
            opens.append(_claims(client.tokens.access))

        async def follow() -> None:
            while True:
                async for event in client.stream_states(on_open=opened):
                    received.append(event)
                renewals.append((time.time(), opens[-1]["exp"]))

        task = asyncio.create_task(follow())
        try:
            await eventually(lambda: len(received) >= 8)  # the first bootstrap
            await control(pbx.control.set_state, pbx.account, number, line="busy")
            await asyncio.sleep(window)
            after = await control(_counters, pbx)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    streams, requests = after[0] - before[0], after[1] - before[1]
    # 3 s tokens (2 s after the second iat may have been cut off) renewed 0.4 s ahead: a
    # stream every 1.6 s or so; the old client opened hundreds a second 10 minutes ahead,
    # and none for 12 minutes 10 minutes behind.
    assert 2 <= streams <= window / RECONNECT_INTERVAL + 2
    assert requests <= 3 * streams + 3  # a stream, and a login or refresh for it
    assert len({claims["jti"] for claims in opens}) == len(opens)  # each with a fresh token
    assert renewals and all(ended < exp for ended, exp in renewals)
    assert any(e.extension == number and e.line == "busy" for e in received)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("skewed", SKEWS, indirect=True)
async def test_the_worker_stores_states_with_its_clock_ten_minutes_off(
    skewed: float, pbx: Pbx, pbx_company: Company
) -> None:
    await control(pbx.control.update_tenant, pbx.account, token_ttl=3.0)
    number = pbx_company.extensions[3].number
    async with running(pbx_company, read_timeout=5.0):
        before = await control(_counters, pbx)
        await control(pbx.control.set_state, pbx.account, number, line="in-use")
        await converged(pbx, pbx_company)
        await asyncio.sleep(3.0)  # renewals of both streams come and go
        await control(pbx.control.set_state, pbx.account, number, presence="dnd")
        await converged(pbx, pbx_company)
        after = await control(_counters, pbx)
        assert await asyncio.to_thread(status, pbx_company) == ConnectionStatus.CONNECTED
    streams = after[0] - before[0]
    requests = after[1] - before[1]
    # Two streams, each renewed about every 1.6 s; the soak saw 605 streams in 5 s.
    assert streams <= 2 * (3.0 + 10.0) / RECONNECT_INTERVAL
    assert requests <= 4 * streams + 20


# --- every reconnect path is paced ---------------------------------------------------------


def _mock_client(
    stream: Callable[[], httpx.Response], *, token_lifetime: float = 300.0
) -> CTIClient:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/login":
            now = time.time()
            return httpx.Response(200, json=_pair(iat=now, exp=now + token_lifetime))
        return stream()

    return CTIClient("http://pbx.test", "u", "p", "K1", transport=httpx.MockTransport(handle))


async def _reconnect_at_once(client: CTIClient, seconds: float) -> int:
    """Open stream after stream, without a pause of its own, for ``seconds``; how many opened."""
    opened = 0

    def count(_: float) -> None:
        nonlocal opened
        opened += 1

    async def loop() -> None:
        while True:
            async for _ in client.stream_calls(on_open=count):
                pass

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(loop(), seconds)
    await client.aclose()
    return opened


async def test_a_stream_that_ends_as_it_opens_is_reopened_ever_more_rarely() -> None:
    def empty() -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=b"")

    # At most one a second, from the second early end on 1, 2, 4 ... s apart: 0, 1, 2, 3-4.
    assert 2 <= await _reconnect_at_once(_mock_client(empty), 3.5) <= 5


async def test_a_token_due_at_once_does_not_make_streams_that_end_as_they_open() -> None:
    async def keepalives() -> AsyncIterator[bytes]:
        while True:
            await asyncio.sleep(0.05)
            yield b": keepalive\n\n"

    def stream() -> httpx.Response:
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=keepalives()
        )

    # Due for renewal 0.08 s after the login: each stream stays open for a second at least.
    client = _mock_client(stream, token_lifetime=0.1)
    assert 2 <= await _reconnect_at_once(client, 3.5) <= 5


def test_pacing_grows_on_repeated_early_ends_and_resets_once_healthy() -> None:
    pacing = Pacing()
    assert pacing.interval == RECONNECT_INTERVAL
    pacing.ended(lived=0.1, renewed=False)
    assert pacing.interval == RECONNECT_INTERVAL  # one early end may be a hiccup
    intervals = []
    for _ in range(8):
        pacing.ended(lived=0.1, renewed=False)
        intervals.append(pacing.interval)
    assert intervals[:3] == [2, 4, 8] and intervals[-1] == RECONNECT_CAP
    pacing.ended(lived=HEALTHY_STREAM_SECONDS, renewed=False)
    assert pacing.interval == RECONNECT_INTERVAL
    for _ in range(4):
        pacing.ended(lived=0.1, renewed=False)
    pacing.ended(lived=3.0, renewed=False)  # open a while: one early end taken back
    assert pacing.interval == 4
    pacing.ended(lived=3.0, renewed=True)  # renewed as planned
    assert pacing.interval == RECONNECT_INTERVAL


# --- refused logins ------------------------------------------------------------------------


async def _refuse_logins(pbx: Pbx, count: int) -> None:
    """The PBX refuses the next ``count`` logins with 401."""
    await control(
        pbx.control.inject_fault,
        pbx.account,
        "http_error",
        status=401,
        endpoint="POST /login",
        count=count,
    )


async def test_a_transient_login_refusal_is_retried_within_seconds(pbx: Pbx) -> None:
    await _refuse_logins(pbx, 1)
    async with pbx.client() as client:
        before = (await control(_counters, pbx))[1]
        with pytest.raises(AuthenticationFailed):
            await client.login()
        # Asked again at once, the client answers the refusal itself, not the PBX.
        with pytest.raises(AuthenticationFailed, match="next login attempt in"):
            await client.login()
        tokens = None
        for _ in range(100):
            try:
                tokens = await client.login()
                break
            except AuthenticationFailed:
                await asyncio.sleep(0.05)
        assert tokens is not None  # within 5 s; the first retry is due after 1 s
        assert (await control(_counters, pbx))[1] - before == 2


async def test_a_persistent_login_refusal_backs_off(pbx: Pbx) -> None:
    await _refuse_logins(pbx, 1000)
    async with pbx.client() as client:
        before = (await control(_counters, pbx))[1]

        async def keep_trying() -> None:
            while True:
                with pytest.raises(AuthenticationFailed):
                    await client.login()
                await asyncio.sleep(0.02)

        with pytest.raises(TimeoutError):
            await asyncio.wait_for(keep_trying(), 4.0)
        knocks = (await control(_counters, pbx))[1] - before
    # Hundreds of attempts; the PBX saw those at 0, 1, 2-3 and maybe 4-7 s.
    assert 2 <= knocks <= 4
    await control(pbx.control.clear_faults, pbx.account)


@pytest.mark.django_db(transaction=True)
async def test_the_worker_retries_a_transient_login_refusal_within_seconds(
    pbx: Pbx, pbx_company: Company
) -> None:
    await _refuse_logins(pbx, 1)
    # running() waits until the tenant is connected, 10 s at most (it was 30 s at least).
    async with running(pbx_company, read_timeout=5.0):
        assert pbx.control.faults(pbx.account)["http_errors"] == []  # the refusal happened
