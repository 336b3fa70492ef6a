"""Async client for the NFON CTI API (spec: ctiboard/simulator/spec/nfon-cti-api.yaml)."""

import asyncio
import logging
import math
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
from httpx_sse import SSEError, aconnect_sse

from ctiboard import PRODUCT_NAME, __version__

from .errors import AuthenticationFailed, CallNotFound, CTIError
from .events import (
    CallEvent,
    ExtensionData,
    MalformedEvent,
    StateEvent,
    parse_call,
    parse_extension_data,
    parse_state,
)
from .pacing import HEALTHY_STREAM_SECONDS, Pacing
from .tokens import Tokens

logger = logging.getLogger(__name__)

# A refused login is tried again no sooner than 1 s later, then after about 2, 4, 8 ... s
# (jittered), up to this: a transient refusal costs a second, a lasting one costs the PBX
# little. The refusal is raised at once to whoever asks meanwhile.
LOGIN_RETRY_CAP = 60.0
T = TypeVar("T")


def user_agent(account: str) -> str:
    return f"{PRODUCT_NAME}/{__version__} ({account})"


def _request_id(response: httpx.Response) -> str:
    return response.headers.get("x-request-id", "")


def _retry_after(response: httpx.Response) -> float | None:
    try:
        seconds = float(response.headers.get("retry-after", ""))
    except ValueError:
        return None  # absent, or an HTTP date: the caller's own backoff decides
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (ValueError, RecursionError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return response.reason_phrase or "error"


class _UntilDeadline(httpx.AsyncByteStream):
    """A response body that ends cleanly, at a chunk boundary, once ``deadline`` (event loop
    time) has passed.

    Checked per network chunk rather than per event: a chunk under load holds hundreds of
    events, and a keepalive comment is a chunk too, so a quiet stream that only sends
    keepalives still ends on time (no event would come out of the SSE decoder to check on).
    A timer is armed only for a read that could outlast the deadline; a read that starts
    further away from it than ``read_timeout`` is bounded by httpx's own read timeout.
    No timer is ever active while a chunk is being handed on, so none can span the
    consumer's work at the stream's ``yield``.
    """

    def __init__(
        self, stream: httpx.AsyncByteStream, deadline: float, read_timeout: float | None
    ) -> None:
        self._stream = stream
        self._deadline = deadline
        self._read_timeout = read_timeout
        self.expired = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        chunks = aiter(self._stream)
        while True:
            remaining = self._deadline - loop.time()
            if remaining <= 0:
                self.expired = True
                return
            try:
                if self._read_timeout is not None and remaining > self._read_timeout:
                    chunk = await anext(chunks)
                else:
                    async with asyncio.timeout_at(self._deadline):
                        chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            except TimeoutError:
                self.expired = True
                return
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


class CTIClient:
    """One K-Account's session with the CTI API.

    Tokens are refreshed ahead of expiry; a 401 triggers one refresh (or a fresh login)
    and a single retry; refused again, it is a ``CTIError`` with status 401. Bad credentials
    (a refused login) raise ``AuthenticationFailed`` at once; the next login is attempted 1 s
    later at the earliest, then ever more rarely while refusals go on (see LOGIN_RETRY_CAP),
    and until then the refusal is raised again without asking the PBX.
    """

    def __init__(
        self,
        base_url: str,
        username: str,
        password: str,
        account: str,
        *,
        timeout: float = 10.0,
        stream_read_timeout: float = 60.0,
        transport: httpx.AsyncBaseTransport | None = None,
        tokens: Tokens | None = None,
        on_tokens: Callable[[Tokens], None] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self.password = password
        self.account = account
        self.stream_read_timeout = stream_read_timeout
        self.tokens = tokens
        self._on_tokens = on_tokens
        self._token_lock = asyncio.Lock()
        self._login_refusal: AuthenticationFailed | None = None
        self._login_refusals = 0
        self._login_retry_at = -math.inf
        self._pacing: dict[str, Pacing] = {}
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"User-Agent": user_agent(account)},
            timeout=httpx.Timeout(timeout),
            transport=transport,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- authentication -------------------------------------------------------------------

    def _store(self, tokens: Tokens) -> Tokens:
        self.tokens = tokens
        if self._on_tokens is not None:
            self._on_tokens(tokens)
        return tokens

    async def login(self) -> Tokens:
        refusal, wait = self._login_refusal, self._login_retry_at - time.monotonic()
        if refusal is not None and wait > 0:
            raise AuthenticationFailed(
                f"{refusal.args[0]}; next login attempt in {wait:.1f}s",
                status=refusal.status,
                request_id=refusal.request_id,
            )
        requested_at = time.monotonic()
        try:
            response = await self._http.post(
                "/login", json={"username": self.username, "password": self.password}
            )
        except httpx.HTTPError as exc:
            raise CTIError(f"CTI API unreachable: {exc!r}") from exc
        if response.status_code in (400, 401, 403):
            refusal = AuthenticationFailed(
                f"login refused: {_error_text(response)}",
                status=response.status_code,
                request_id=_request_id(response),
            )
            self._login_refused(refusal)
            raise refusal
        self._raise_for_status(response, "login")
        tokens = Tokens.from_response(_json(response, "login"), requested_at=requested_at)
        self._login_refusal, self._login_refusals = None, 0
        return self._store(tokens)

    def _login_refused(self, refusal: AuthenticationFailed) -> None:
        """Hold off the next login: 1 s after the first refusal, then about 2, 4, 8 ... s."""
        self._login_refusal = refusal
        self._login_refusals += 1
        delay = min(LOGIN_RETRY_CAP, 2.0 ** min(self._login_refusals - 1, 16))
        if self._login_refusals > 1:
            delay = max(1.0, random.uniform(delay / 2, delay))
        self._login_retry_at = time.monotonic() + delay

    async def refresh(self) -> Tokens:
        if self.tokens is None:
            return await self.login()
        requested_at = time.monotonic()
        try:
            response = await self._http.put(
                "/login", headers={"Authorization": f"Bearer {self.tokens.refresh}"}
            )
        except httpx.HTTPError as exc:
            raise CTIError(f"CTI API unreachable: {exc!r}") from exc
        if response.status_code in (400, 401, 403):
            # The refresh token expired or was revoked: a fresh login is the way back.
            return await self.login()
        self._raise_for_status(response, "token refresh")
        tokens = Tokens.from_response(_json(response, "token refresh"), requested_at=requested_at)
        return self._store(tokens)

    async def current_tokens(self, *, force_refresh: bool = False) -> Tokens:
        """A fresh token pair: refreshed ahead of expiry, or at once with ``force_refresh``."""
        async with self._token_lock:
            if self.tokens is None:
                await self.login()
            elif force_refresh or not self.tokens.fresh():
                await self.refresh()
            assert self.tokens is not None
            return self.tokens

    async def access_token(self, *, force_refresh: bool = False) -> str:
        return (await self.current_tokens(force_refresh=force_refresh)).access

    async def _authorized(self, send: Callable[[dict[str, str]], Any]) -> httpx.Response:
        token = await self.access_token()
        try:
            response: httpx.Response = await send({"Authorization": f"Bearer {token}"})
            if response.status_code == 401:
                token = await self.access_token(force_refresh=True)
                response = await send({"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            raise CTIError(f"CTI API unreachable: {exc!r}") from exc
        if response.status_code == 401:
            # A token issued a moment ago refused too. The credentials themselves were accepted
            # (a refused login raises AuthenticationFailed), so this is the server's doing or
            # a missing right: the caller decides when it stops looking transient.
            raise CTIError(
                "access token refused twice", status=401, request_id=_request_id(response)
            )
        return response

    @staticmethod
    def _raise_for_status(response: httpx.Response, what: str) -> None:
        if response.status_code == 404:
            raise CallNotFound(
                f"{what}: {_error_text(response)}", status=404, request_id=_request_id(response)
            )
        if response.is_error:
            raise CTIError(
                f"{what} failed: {_error_text(response)}",
                status=response.status_code,
                request_id=_request_id(response),
                retry_after=_retry_after(response),
            )

    # --- requests -------------------------------------------------------------------------

    async def extensions(self) -> list[ExtensionData]:
        response = await self._authorized(
            lambda headers: self._http.get("/extensions/phone/data", headers=headers)
        )
        self._raise_for_status(response, "extension list")
        body = _json(response, "extension list")
        if not isinstance(body, list):
            raise CTIError("extension list is not a JSON array", request_id=_request_id(response))
        result = []
        for entry in body:
            try:
                result.append(parse_extension_data(entry))
            except MalformedEvent as exc:
                logger.warning("%s: skipped extension entry: %s", self.account, exc)
        return result

    async def states_snapshot(self, extensions: list[str] | None = None) -> list[StateEvent]:
        params: list[tuple[str, str | int | float | bool | None]] = [
            ("extension", number) for number in extensions or []
        ]
        response = await self._authorized(
            lambda headers: self._http.get(
                "/extensions/phone/states",
                params=params,
                headers={**headers, "Accept": "application/json"},
            )
        )
        self._raise_for_status(response, "state snapshot")
        body = _json(response, "state snapshot")
        if not isinstance(body, list):
            raise CTIError("state snapshot is not a JSON array", request_id=_request_id(response))
        return list(self._parsed(body, parse_state, "state"))

    async def originate(
        self,
        caller: str,
        callee: str,
        *,
        caller_context: str | None = None,
        callee_context: str | None = None,
        extension: str | None = None,
        timeout: int | None = None,
    ) -> CallEvent:
        """Start a click-to-dial call; returns the ``start`` event with the call uuid."""
        body = _call_body(caller, callee, caller_context, callee_context, extension, timeout)
        response = await self._authorized(
            lambda headers: self._http.post(
                "/extensions/phone/calls",
                json=body,
                headers={**headers, "Accept": "application/json"},
            )
        )
        self._raise_for_status(response, "call request")
        try:
            return parse_call(_json(response, "call request"))
        except MalformedEvent as exc:
            raise CTIError(f"call request: {exc}", request_id=_request_id(response)) from None

    async def cancel(self, uuid: str) -> None:
        response = await self._authorized(
            lambda headers: self._http.delete(f"/extensions/phone/calls/{uuid}", headers=headers)
        )
        self._raise_for_status(response, "call cancel")

    # --- streams --------------------------------------------------------------------------

    def _parsed(self, frames: list[Any], parse: Callable[[Any], T], kind: str) -> "list[T]":
        result = []
        for frame in frames:
            try:
                result.append(parse(frame))
            except (ValueError, RecursionError) as exc:  # MalformedEvent is a ValueError
                logger.warning("%s: skipped malformed %s event: %s", self.account, kind, exc)
        return result

    async def _stream(
        self,
        method: str,
        path: str,
        parse: Callable[[str], T],
        kind: str,
        json_body: dict[str, Any] | None = None,
        *,
        rotate: bool = False,
        on_open: Callable[[float], object] | None = None,
    ) -> AsyncGenerator[T, None]:
        """Yield the parsed events of one SSE response; every failure is a ``CTIError``.

        With ``rotate`` the generator ends cleanly when the token it was opened with is due for
        refresh, so that its caller reconnects with a fresh one (a server may cut a stream whose
        token expired), and the stream is paced (see ``pacing.Pacing``): the first step of
        the generator may wait up to ``pacing.RECONNECT_CAP`` before it connects. ``on_open``
        is called once the server accepted the stream, with the ``time.monotonic()`` at which
        it will end for its renewal (``math.inf`` without ``rotate``).
        """
        timeout = httpx.Timeout(self._http.timeout.connect, read=self.stream_read_timeout)
        loop = asyncio.get_running_loop()
        pacing = self._pacing.setdefault(kind, Pacing()) if rotate else None
        attempt_at = await pacing.wait() if pacing is not None else time.monotonic()
        opened_at: float | None = None
        renewed = False  # ended cleanly at its renewal time
        closed_by_consumer = False
        try:
            for attempt in (1, 2):
                tokens = await self.current_tokens(force_refresh=attempt == 2)
                rotate_at = math.inf
                if pacing is not None:
                    # A token due for renewal sooner than the next stream may open (a lifetime
                    # of a second or two) keeps its stream open until a while after that,
                    # rather than making streams that end as soon as they open; a successor
                    # opened ahead of the renewal (the ingest's call stream) still overlaps.
                    rotate_at = max(tokens.renew_at, attempt_at + 1.5 * pacing.interval)
                try:
                    async with aconnect_sse(
                        self._http,
                        method,
                        path,
                        json=json_body,
                        headers={"Authorization": f"Bearer {tokens.access}"},
                        timeout=timeout,
                    ) as source:
                        response = source.response
                        if response.status_code == 401 and attempt == 1:
                            continue
                        if response.status_code == 401:
                            raise CTIError(  # as in _authorized: not the credentials' fault
                                f"{kind} stream refused twice",
                                status=401,
                                request_id=_request_id(response),
                            )
                        if response.is_error:
                            await response.aread()
                        self._raise_for_status(response, f"{kind} stream")
                        opened_at = time.monotonic()
                        if on_open is not None:
                            on_open(rotate_at)
                        body: _UntilDeadline | None = None
                        if not math.isinf(rotate_at) and isinstance(
                            response.stream, httpx.AsyncByteStream
                        ):
                            body = _UntilDeadline(
                                response.stream,
                                loop.time() + (rotate_at - time.monotonic()),
                                self.stream_read_timeout,
                            )
                            response.stream = body
                        frames = source.aiter_sse()
                        try:
                            while True:
                                try:
                                    sse = await anext(frames)
                                except StopAsyncIteration:
                                    if body is not None and body.expired:
                                        renewed = True
                                        logger.info(
                                            "%s: renewing the %s stream before its token expires",
                                            self.account,
                                            kind,
                                        )
                                    return
                                if not sse.data:
                                    continue
                                try:
                                    event = parse(sse.data)
                                except (ValueError, RecursionError) as exc:
                                    logger.warning(
                                        "%s: skipped malformed %s event: %s",
                                        self.account,
                                        kind,
                                        exc,
                                    )
                                    continue
                                yield event
                        finally:
                            await frames.aclose()
                except SSEError as exc:
                    raise CTIError(f"{kind} stream is not an event stream: {exc}") from exc
                except httpx.ReadTimeout as exc:
                    raise CTIError(f"{kind} stream stalled: nothing received in time") from exc
                except httpx.HTTPError as exc:
                    raise CTIError(f"{kind} stream broke: {exc!r}") from exc
                except httpx.StreamError as exc:
                    raise CTIError(f"{kind} stream failed: {exc!r}") from exc
        except (GeneratorExit, asyncio.CancelledError):
            closed_by_consumer = True
            raise
        finally:
            if pacing is not None and opened_at is not None:
                lived = time.monotonic() - opened_at
                # Closed by its consumer, a stream says nothing about the server, unless it
                # stayed open long enough to count as healthy.
                if not closed_by_consumer or lived >= HEALTHY_STREAM_SECONDS:
                    pacing.ended(lived=lived, renewed=renewed)

    def stream_states(
        self, *, on_open: Callable[[float], object] | None = None
    ) -> AsyncGenerator[StateEvent, None]:
        """Every extension's state first (bootstrap), then changes as they happen.

        Ends cleanly shortly before the access token behind it expires: reconnect then.
        """
        return self._stream(
            "GET", "/extensions/phone/states", parse_state, "state", rotate=True, on_open=on_open
        )

    def stream_calls(
        self, *, on_open: Callable[[float], object] | None = None
    ) -> AsyncGenerator[CallEvent, None]:
        """Call events of the whole K-Account from now on (no history).

        Ends cleanly shortly before the access token behind it expires: reconnect then.
        """
        return self._stream(
            "GET", "/extensions/phone/calls", parse_call, "call", rotate=True, on_open=on_open
        )

    def originate_stream(
        self,
        caller: str,
        callee: str,
        *,
        caller_context: str | None = None,
        callee_context: str | None = None,
        extension: str | None = None,
        timeout: int | None = None,
    ) -> AsyncGenerator[CallEvent, None]:
        """Start a call and follow its progress from ``start`` to ``end``."""
        body = _call_body(caller, callee, caller_context, callee_context, extension, timeout)
        return self._stream("POST", "/extensions/phone/calls", parse_call, "call progress", body)


def _json(response: httpx.Response, what: str) -> Any:
    try:
        return response.json()
    except (ValueError, RecursionError):
        raise CTIError(
            f"{what}: the answer is not JSON",
            status=response.status_code,
            request_id=_request_id(response),
        ) from None


def _call_body(
    caller: str,
    callee: str,
    caller_context: str | None,
    callee_context: str | None,
    extension: str | None,
    timeout: int | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"caller": caller, "callee": callee}
    if caller_context:
        body["caller_context"] = caller_context
    if callee_context:
        body["callee_context"] = callee_context
    if extension:
        body["extension"] = extension
    if timeout is not None:
        body["timeout"] = timeout
    return body
