"""The client's streams under faults: every failure is a CTIError, renewal ends them cleanly.

The property tests feed arbitrary bytes through httpx.MockTransport; the rest runs against the
simulator.
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ctiboard.cti.client import AuthenticationFailed, CTIClient, CTIError
from ctiboard.cti.events import CallEvent, StateEvent
from tests.conftest import Pbx

ACCOUNT = "K4242"


def _token(lifetime: float = 300.0) -> str:
    now = time.time()
    claims = {"customer": ACCOUNT, "iat": now, "exp": now + lifetime}
    return jwt.encode(claims, "the client never checks this signature", algorithm="HS256")


def _mock(stream: httpx.Response | None = None, *, stream_status: int = 200) -> CTIClient:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/login":
            return httpx.Response(200, json={"access-token": _token(), "refresh-token": "r"})
        if stream is not None:
            return stream
        return httpx.Response(stream_status, json={"error": "no"})

    return CTIClient("http://pbx.test", "u", "p", ACCOUNT, transport=httpx.MockTransport(handle))


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _drain(client: CTIClient, kind: str) -> list[object]:
    stream = client.stream_states() if kind == "states" else client.stream_calls()
    received: list[object] = []
    try:
        async for event in stream:
            received.append(event)
    except CTIError:
        pass  # the only exception allowed out of a stream
    finally:
        await stream.aclose()
        await client.aclose()
    return received


# Bytes that look like SSE now and then, so the parser's deeper paths get exercised.
_SSE_PIECES = st.sampled_from(
    [
        b"data: ",
        b"\n",
        b"\r\n",
        b"\n\n",
        b":keepalive\n\n",
        b'{"extension": "100", "line": "idle"}',
        b'{"uuid": "u", "state": "ring", "extension": "100"}',
        b'{"extension": ',
        b'"updated": "2025-01-01T00:00:00+99:99"',
        b"[" * 3000,
        b"\xff\xfe",
        b"event: x\nid: 1\nretry: 5\n",
    ]
)
_BODY = st.lists(st.binary(max_size=64) | _SSE_PIECES, max_size=30)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(parts=_BODY, kind=st.sampled_from(["states", "calls"]))
async def test_arbitrary_bytes_yield_events_or_a_cti_error(parts: list[bytes], kind: str) -> None:
    response = httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=_chunks(parts)
    )
    received = await _drain(_mock(response), kind)
    expected = StateEvent if kind == "states" else CallEvent
    assert all(isinstance(event, expected) for event in received)


@settings(max_examples=60)
@given(
    status=st.integers(min_value=200, max_value=599),
    content_type=st.sampled_from(["text/event-stream", "application/json", "text/html", ""]),
    body=st.binary(max_size=200),
)
async def test_arbitrary_answers_yield_events_or_a_cti_error(
    status: int, content_type: str, body: bytes
) -> None:
    response = httpx.Response(status, headers={"content-type": content_type}, content=body)
    received = await _drain(_mock(response), "states")
    assert all(isinstance(event, StateEvent) for event in received)


async def test_a_stream_refused_twice_despite_a_fresh_login_is_a_401_error() -> None:
    client = _mock(stream_status=401)
    with pytest.raises(CTIError) as error:
        async for _ in client.stream_states():
            pass
    await client.aclose()
    # The login worked: not (yet) a matter of bad credentials, the worker decides.
    assert error.value.status == 401 and not isinstance(error.value, AuthenticationFailed)


async def test_a_refused_login_is_bad_credentials() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": "invalid credentials"})

    transport = httpx.MockTransport(handle)
    async with CTIClient("http://pbx.test", "u", "p", ACCOUNT, transport=transport) as client:
        with pytest.raises(AuthenticationFailed):
            async for _ in client.stream_calls():
                pass


async def test_503_carries_retry_after() -> None:
    response = httpx.Response(503, headers={"Retry-After": "7"}, json={"error": "busy"})
    client = _mock(response)
    with pytest.raises(CTIError) as error:
        async for _ in client.stream_calls():
            pass
    await client.aclose()
    assert (error.value.status, error.value.retry_after) == (503, 7.0)


async def test_json_answers_that_are_not_json_are_cti_errors() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"<html>maintenance</html>")

    async with CTIClient(
        "http://pbx.test", "u", "p", ACCOUNT, transport=httpx.MockTransport(handle)
    ) as client:
        with pytest.raises(CTIError):
            await client.login()


# --- against the simulator ----------------------------------------------------------------


async def test_stream_ends_cleanly_ahead_of_token_expiry(pbx: Pbx) -> None:
    # 3 s by whole-second claims: the client counts on 2 s (the iat may have been cut off),
    # and renews 0.4 s ahead, long after the 1.5 s it keeps any stream open at least.
    pbx.control.update_tenant(pbx.account, token_ttl=3.0)
    async with pbx.client() as client:
        renew_at: list[float] = []
        stream = client.stream_calls(on_open=renew_at.append)
        # No event on a quiet call stream: the generator just ends before the token expires.
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(stream), 5)
        assert client.tokens is not None
        assert renew_at == [client.tokens.renew_at]
        assert not client.tokens.fresh()  # so the next stream starts with a fresh token
        first = client.tokens.access
        number = (await client.extensions())[0].number
        opened = asyncio.Event()
        again = client.stream_calls(on_open=lambda _: opened.set())
        following = asyncio.ensure_future(anext(again))
        await asyncio.wait_for(opened.wait(), 5)
        pbx.control.ring(pbx.account, "4930123456", number)
        event = await asyncio.wait_for(following, 5)
        assert event.state == "ring" and client.tokens.access != first
        await again.aclose()


async def test_a_stream_refused_once_is_retried_with_a_fresh_token(pbx: Pbx) -> None:
    async with pbx.client() as client:
        await client.login()
        first = client.tokens.access if client.tokens else ""
        pbx.control.inject_fault(pbx.account, "unauthorized")  # the next request gets 401
        stream = client.stream_states()
        event = await asyncio.wait_for(anext(stream), 5)
        assert isinstance(event, StateEvent)
        assert client.tokens is not None and client.tokens.access != first
        await stream.aclose()


async def test_a_truncated_last_frame_ends_the_stream_without_it(pbx: Pbx) -> None:
    async with pbx.client() as client:
        stream = client.stream_states()
        bootstrap = [await asyncio.wait_for(anext(stream), 5) for _ in range(8)]
        pbx.control.inject_fault(pbx.account, "truncate", stream="states")
        rest = [event async for event in stream]
    assert len(bootstrap) == 8 and rest == []


async def test_a_silent_stall_is_a_cti_error(pbx: Pbx) -> None:
    pbx.control.update_tenant(pbx.account, keepalive=0.1)
    async with pbx.client(stream_read_timeout=0.5) as client:
        stream = client.stream_states()
        for _ in range(8):
            await asyncio.wait_for(anext(stream), 5)
        pbx.control.inject_fault(pbx.account, "stall", stream="states")
        with pytest.raises(CTIError, match="stalled"):
            await asyncio.wait_for(anext(stream), 5)
    pbx.control.clear_faults(pbx.account)


async def test_malformed_frames_are_logged_with_the_tenant_and_skipped(
    pbx: Pbx, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with pbx.client() as client:
        numbers = [e.number for e in await client.extensions()]
        stream = client.stream_states()
        for _ in numbers:
            await asyncio.wait_for(anext(stream), 5)
        for variant in ("broken_json", "missing_fields"):
            pbx.control.inject_fault(pbx.account, "malformed", stream="states", variant=variant)
        pbx.control.set_state(pbx.account, numbers[1], line="busy")
        event = await asyncio.wait_for(anext(stream), 5)
        assert (event.extension, event.line) == (numbers[1], "busy")
        await stream.aclose()
    skipped = [r.getMessage() for r in caplog.records if "skipped malformed" in r.getMessage()]
    assert len(skipped) == 2 and all(pbx.account in message for message in skipped)


# --- renewal at the token's deadline ------------------------------------------------------

KEEPALIVE = b": keepalive\n\n"


def _frame(number: str) -> bytes:
    return b'data: {"extension": "' + number.encode() + b'", "line": "idle"}\n\n'


def _renewing_client(
    body: AsyncIterator[bytes], *, token_lifetime: float, stream_read_timeout: float
) -> CTIClient:
    # The stream is due for renewal a fifth of the token's lifetime before it expires, i.e.
    # 0.8 x token_lifetime after the login.
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/login":
            access = _token(token_lifetime)
            return httpx.Response(200, json={"access-token": access, "refresh-token": "r"})
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    return CTIClient(
        "http://pbx.test",
        "u",
        "p",
        ACCOUNT,
        transport=httpx.MockTransport(handle),
        stream_read_timeout=stream_read_timeout,
    )


async def _renewed(client: CTIClient, caplog: pytest.LogCaptureFixture) -> list[str]:
    """The extensions received before the stream ended by itself, which it must do cleanly
    (a CTIError fails the test) and for renewal."""
    caplog.set_level(logging.INFO)
    received: list[str] = []
    async with client:
        stream = client.stream_states()

        async def drain() -> None:
            async for event in stream:
                received.append(event.extension)

        await asyncio.wait_for(drain(), 10)  # bounds a hang only: the body never ends
    assert any("renewing the state stream" in r.getMessage() for r in caplog.records)
    return received


async def test_a_stream_is_renewed_at_its_deadline_while_nothing_arrives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The deadline (2 s away) is nearer than the read timeout: the read itself is bounded.
    async def body() -> AsyncIterator[bytes]:
        yield _frame("100")
        await asyncio.sleep(3600)
        yield _frame("101")

    client = _renewing_client(body(), token_lifetime=2.5, stream_read_timeout=60.0)
    assert await _renewed(client, caplog) == ["100"]


async def test_a_stream_of_keepalives_only_is_renewed_at_its_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The deadline (2 s away) starts further away than the read timeout, so reads are
    # bounded by httpx's read timeout alone until it comes near; keepalives keep those reads
    # from ever timing out, and no event comes out of them to look at the clock.
    async def body() -> AsyncIterator[bytes]:
        yield _frame("100")
        while True:
            await asyncio.sleep(0.02)
            yield KEEPALIVE

    client = _renewing_client(body(), token_lifetime=2.5, stream_read_timeout=0.2)
    assert await _renewed(client, caplog) == ["100"]


async def test_a_read_that_ends_after_the_deadline_ends_the_stream_with_its_events(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Begun while the deadline (2 s away) was further away than the read timeout, a read
    # is not timed by the client: the transport's read timeout is (MockTransport has none,
    # which stands for a read that ends just before it). The events of that last chunk are
    # passed on, then the stream ends instead of reading again.
    async def body() -> AsyncIterator[bytes]:
        yield _frame("100")
        await asyncio.sleep(2.4)
        yield _frame("101") + _frame("102")
        while True:
            await asyncio.sleep(0.02)
            yield _frame("103")

    client = _renewing_client(body(), token_lifetime=2.5, stream_read_timeout=0.1)
    assert await _renewed(client, caplog) == ["100", "101", "102"]
