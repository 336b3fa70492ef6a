"""NFON's CTI API (spec/nfon-cti-api.yaml): login, extension data, the state and call streams,
click-to-dial and its cancel, with the tenant's injected faults applied to every request."""

import asyncio
import hmac
import re
from datetime import datetime
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from ctiboard.lib.accept import negotiate
from ctiboard.simulator.model import (
    CALL_ERRORS,
    DEFAULT_TIMEOUT,
    MAX_TIMEOUT,
    NotFound,
    OriginateRequest,
    SimError,
    frame,
)
from ctiboard.simulator.simulator import SimTenant, Simulator
from ctiboard.simulator.streams import Subscription
from ctiboard.simulator.tokens import InvalidToken, TokenType
from ctiboard.simulator.web import is_number, json_body, logger

SSE = "text/event-stream"
JSON = "application/json"
KEEPALIVE = b": keepalive\n\n"
CHUNK = 64 * 1024
CALL_STATES = (
    "start",
    "caller-wait",
    "caller-dial",
    "caller-ring",
    "caller-answer",
    "dial",
    "ring",
    "answer",
    "hangup",
    "end",
)
# NFON asks for `<productname>/<productversion> (<K-Account>)`; tokens as in RFC 9110.
_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
USER_AGENT = re.compile(rf"^{_TCHARS}/{_TCHARS} \((?P<account>K[0-9A-Za-z]+)\)$")
CALL_UUID = re.compile(r"^\w{8}-\w{4}-\w{4}-\w{4}-\w{12}$")  # the spec's own pattern
UUID_FORMAT = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")
DATE_TIME = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
# E.164 without "+" or "00", as the spec asks for numbers in the global context: a country
# code and a subscriber number, 7 to 15 digits in all (ITU-T E.164 allows at most 15).
GLOBAL_NUMBER = re.compile(r"^[1-9]\d{6,14}$")
BEARER = re.compile(r"^Bearer +(\S+) *$", re.IGNORECASE)
MAX_LOGGED_AGENTS = 1000


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> HTTPException:
    return HTTPException(status_code=status, detail=message, headers=headers)


def _unauthorized(message: str) -> HTTPException:
    return _error(401, message, {"WWW-Authenticate": 'Bearer error="invalid_token"'})


def _valid_date_time(value: str) -> bool:
    match = DATE_TIME.match(value)
    if match is None:
        return False
    date, clock, fraction, offset = match.groups()
    # fromisoformat wants at most microseconds and no "Z" on Python 3.11.
    offset = "+00:00" if offset in "Zz" else offset
    try:
        datetime.fromisoformat(f"{date}T{clock}{(fraction or '')[:7]}{offset}")
    except ValueError:
        return False
    return True


_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # tell reverse proxies not to buffer the stream
]


class EventStream:
    """An SSE response fed by a Subscription; it also carries out the injected stream faults."""

    def __init__(self, tenant: SimTenant, subscription: Subscription, head: list[bytes]) -> None:
        self.tenant = tenant
        self.subscription = subscription
        self.head = head

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "HEAD":
            # Headers only: a HEAD request must not hold a subscription open forever.
            self.subscription.close()
            await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
            await send({"type": "http.response.body", "body": b""})
            return
        pump = asyncio.ensure_future(self._pump(send))
        listener = asyncio.ensure_future(_wait_for_disconnect(receive))
        try:
            await asyncio.wait({pump, listener}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.subscription.close()
            for task in (pump, listener):
                task.cancel()
            await asyncio.gather(pump, listener, return_exceptions=True)
        if pump.done() and not pump.cancelled():
            pump.result()  # re-raises what broke the stream, for the error middleware to log

    async def _send(self, send: Send, body: bytes, frames: int) -> None:
        await send({"type": "http.response.body", "body": body, "more_body": True})
        self.tenant.state.counters.events_sent += frames

    async def _pump(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        # Daphne holds the status line and headers back until the first body write; an empty
        # one flushes them, so a client knows it is subscribed before any event exists.
        await self._send(send, b"", 0)
        for start in range(0, len(self.head), 256):
            batch = self.head[start : start + 256]
            await self._send(send, b"".join(batch), len(batch))
        queue = self.subscription.queue
        getter: asyncio.Future[Any] | None = None
        pending = None
        try:
            while True:
                if pending is not None:
                    item, pending = pending, None
                else:
                    if getter is None:
                        getter = asyncio.ensure_future(queue.get())
                    # The getter survives a keepalive timeout, so no event is lost to a race.
                    done, _ = await asyncio.wait({getter}, timeout=self.tenant.state.keepalive)
                    if not done:
                        await self._send(send, KEEPALIVE, 0)
                        continue
                    item, getter = getter.result(), None
                if isinstance(item, bytes):
                    batch = [item]
                    size = len(item)
                    while size < CHUNK and not queue.empty():
                        following = queue.get_nowait()
                        if not isinstance(following, bytes):
                            pending = following
                            break
                        batch.append(following)
                        size += len(following)
                    await self._send(send, b"".join(batch), len(batch))
                elif item.action == "stall":
                    await self.subscription.released.wait()
                else:
                    # close, or truncate: a frame cut off before its blank line, then close.
                    if item.payload:
                        await self._send(send, item.payload, 0)
                    break
        finally:
            if getter is not None:
                getter.cancel()
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class Api:
    """The NFON CTI API endpoints."""

    def __init__(self, simulator: Simulator) -> None:
        self.sim = simulator
        self._logged_agents: set[tuple[str, str]] = set()

    def routes(self) -> list[Route]:
        return [
            Route("/login", self.login, methods=["POST", "PUT"]),
            Route("/.well-known/jwks.json", self.jwks, methods=["GET"]),
            Route("/extensions/phone/data", self.data, methods=["GET"]),
            Route("/extensions/phone/states", self.states, methods=["GET"]),
            Route("/extensions/phone/calls", self.calls, methods=["GET", "POST"]),
            Route("/extensions/phone/calls/{uuid}", self.cancel, methods=["DELETE"]),
        ]

    # -- request pipeline ---------------------------------------------------------------------

    def _check_user_agent(self, request: Request, tenant: SimTenant | None) -> None:
        agent = request.headers.get("user-agent", "")
        match = USER_AGENT.match(agent)
        if match is not None and (tenant is None or match["account"] == tenant.account):
            return
        account = tenant.account if tenant is not None else ""
        if tenant is not None:
            tenant.state.counters.non_conforming_user_agents += 1
        else:
            self.sim.unattributed_non_conforming += 1
        # Log each distinct agent once per tenant: a client sends it on every request.
        key = (account, agent)
        if key not in self._logged_agents and len(self._logged_agents) < MAX_LOGGED_AGENTS:
            self._logged_agents.add(key)
            logger.warning(
                "non-conforming User-Agent %r for %s (NFON asks for '<product>/<version> (%s)')",
                agent,
                account or "an unknown tenant",
                account or "<K-Account>",
            )

    def _clock_skew(self, customer: str) -> float:
        tenant = self.sim.tenants.get(customer)
        return tenant.state.clock_skew if tenant is not None else 0.0

    def _authenticate(self, request: Request, kind: TokenType) -> SimTenant:
        match = BEARER.match(request.headers.get("authorization", ""))
        if match is None:
            self._check_user_agent(request, None)
            raise _unauthorized("a bearer token is required")
        try:
            claims = self.sim.tokens.verify(match[1], kind, self._clock_skew)
        except InvalidToken as exc:
            self._check_user_agent(request, None)
            raise _unauthorized(str(exc)) from None
        tenant = self.sim.tenants.get(claims.customer)
        if tenant is None or tenant.username != claims.username:
            self._check_user_agent(request, None)
            raise _unauthorized("unknown customer")
        return tenant

    async def _admit(self, request: Request, tenant: SimTenant, *, authorized: bool = True) -> None:
        """Count the request and apply the tenant's injected faults."""
        self._check_user_agent(request, tenant)
        tenant.state.counters.requests += 1
        if authorized and tenant.faults.take_unauthorized():
            raise _unauthorized("token rejected (injected fault)")
        method, path = request.method, request.scope["route"].path
        status = tenant.faults.take_http_fault(method, path)
        if status is not None:
            headers = {"Retry-After": "1"} if status == 503 else None
            raise _error(status, f"injected {status} on {method} {path}", headers)
        delay = tenant.faults.take_delay(method, path)
        if delay:
            await asyncio.sleep(delay)

    async def _tenant(self, request: Request, kind: TokenType = "access") -> SimTenant:
        tenant = self._authenticate(request, kind)
        await self._admit(request, tenant)
        return tenant

    # -- endpoints ----------------------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        if request.method == "PUT":
            return JSONResponse(self._token_pair(await self._tenant(request, "refresh")))
        try:
            body = await json_body(request)
        except SimError as exc:
            self._check_user_agent(request, None)
            raise _error(400, str(exc)) from None
        if not (
            isinstance(body, dict)
            and isinstance(body.get("username"), str)
            and isinstance(body.get("password"), str)
        ):
            self._check_user_agent(request, None)
            raise _error(400, "the body must be a JSON object with string username and password")
        tenant = self.sim.tenant_for_username(body["username"])
        if tenant is None:
            self._check_user_agent(request, None)
            raise _unauthorized("invalid credentials")
        await self._admit(request, tenant, authorized=False)
        if not hmac.compare_digest(body["password"].encode(), tenant.state.password.encode()):
            raise _unauthorized("invalid credentials")
        return JSONResponse(self._token_pair(tenant))

    def _token_pair(self, tenant: SimTenant) -> dict[str, str]:
        return {
            "access-token": self.sim.tokens.issue(tenant.state, "access", tenant.state.token_ttl),
            "refresh-token": self.sim.tokens.issue(
                tenant.state, "refresh", tenant.state.refresh_ttl
            ),
        }

    async def jwks(self, request: Request) -> Response:
        self._check_user_agent(request, None)
        return JSONResponse(self.sim.tokens.jwks())

    async def data(self, request: Request) -> Response:
        tenant = await self._tenant(request)
        return JSONResponse(tenant.state.extension_data())

    async def states(self, request: Request) -> Response | EventStream:
        tenant = await self._tenant(request)
        media = negotiate(request.headers.get("accept", ""), (SSE, JSON))
        if media is None:
            raise _error(406, f"Accept must allow {SSE} or {JSON}")
        if media == JSON:
            numbers = request.query_params.getlist("extension")
            return JSONResponse(tenant.state.states(numbers or None))
        # Subscribe before taking the snapshot, with no await between: no change falls between.
        subscription = tenant.state.subscribe("states")
        return EventStream(tenant, subscription, [frame(state) for state in tenant.state.states()])

    async def calls(self, request: Request) -> Response | EventStream:
        tenant = await self._tenant(request)
        accept = request.headers.get("accept", "")
        if request.method == "GET":
            if negotiate(accept, (SSE,)) is None:
                raise _error(406, f"the call stream is only available as {SSE}")
            return EventStream(tenant, tenant.state.subscribe("calls"), [])
        media = negotiate(accept, (JSON, SSE))
        if media is None:
            raise _error(406, f"Accept must allow {JSON} or {SSE}")
        try:
            originate = _originate_request(
                tenant, await json_body(request), request.headers.get("x-cloudya-device-uuid")
            )
            call = tenant.dial.originate(originate)
        except NotFound as exc:
            # An unknown extension makes the request invalid; 404 is for unknown calls.
            raise _error(400, str(exc)) from None
        if media == JSON:
            return JSONResponse(call.start_event, status_code=202)
        subscription = tenant.dial.watch(call)
        start = {key: call.start_event[key] for key in ("uuid", "state", "updated")}
        return EventStream(tenant, subscription, [frame(start)])

    async def cancel(self, request: Request) -> Response:
        tenant = await self._tenant(request)
        call_uuid = request.path_params["uuid"]
        if CALL_UUID.fullmatch(call_uuid) is None:
            raise _error(400, "malformed call uuid")
        tenant.dial.cancel(call_uuid)
        return Response(status_code=204)


def _originate_request(tenant: SimTenant, body: Any, device_uuid: str | None) -> OriginateRequest:
    """Validate a click-to-dial body against the spec's `call` schema and its prose."""
    if not isinstance(body, dict):
        raise SimError("the body must be a JSON object")
    # Every property the schema declares must have its declared type, even the read-only ones
    # the simulator then ignores: a client sending them wrong has a bug worth a 400.
    for key, value in body.items():
        if key == "timeout":
            if not is_number(value) or value != int(value):
                raise SimError("timeout must be an integer")
        elif key in _CALL_STRING_FIELDS and not isinstance(value, str):
            raise SimError(f"{key} must be a string")
    for key, allowed in (
        ("caller_role", ("user", "moderator")),
        ("state", CALL_STATES),
        ("direction", ("inbound", "outbound")),
        ("error", CALL_ERRORS),
    ):
        if key in body and body[key] not in allowed:
            raise SimError(f"{key} must be one of {', '.join(allowed)}")
    for key in ("uuid", "callee_conference_uuid"):
        if key in body and not UUID_FORMAT.match(body[key]):
            raise SimError(f"{key} must be a UUID")
    if "updated" in body and not _valid_date_time(body["updated"]):
        raise SimError("updated must be an RFC 3339 date-time")
    if device_uuid is not None and not UUID_FORMAT.match(device_uuid):
        raise SimError("X-Cloudya-Device-UUID must be a UUID")
    timeout = int(body.get("timeout", DEFAULT_TIMEOUT))
    if not 1 <= timeout <= MAX_TIMEOUT:
        raise SimError(f"timeout must be between 1 and {MAX_TIMEOUT} seconds")
    caller, callee = body.get("caller", ""), body.get("callee", "")
    if not caller:
        raise SimError("caller is required")
    if not callee:
        raise SimError("callee is required")
    # Empty contexts mean the K-Account, as the spec says.
    caller_context = body.get("caller_context") or tenant.account
    callee_context = body.get("callee_context") or tenant.account
    if caller_context not in (tenant.account, "global"):
        raise SimError(f"caller_context must be {tenant.account} or global")
    if callee_context not in (tenant.account, "global", "conference"):
        raise SimError(f"callee_context must be {tenant.account}, global or conference")
    for role, number, context in (
        ("caller", caller, caller_context),
        ("callee", callee, callee_context),
    ):
        if context == "global" and not GLOBAL_NUMBER.match(number):
            raise SimError(f"{role} must be an international number without + or 00 prefix")
    if callee_context == "conference":
        missing = [
            name
            for name, value in (
                ("caller_role", body.get("caller_role")),
                ("callee_conference_uuid", body.get("callee_conference_uuid")),
                ("X-Cloudya-Device-UUID header", device_uuid),
            )
            if not value
        ]
        if missing:
            raise SimError(f"joining a conference needs {', '.join(missing)}")
    return OriginateRequest(
        caller=caller,
        callee=callee,
        caller_context=caller_context,
        callee_context=callee_context,
        extension=body.get("extension") or None,
        timeout=timeout,
    )


_CALL_STRING_FIELDS = frozenset(
    {
        "uuid",
        "caller",
        "caller_context",
        "caller_device",
        "caller_role",
        "callee",
        "callee_context",
        "callee_conference_uuid",
        "state",
        "updated",
        "extension",
        "customer",
        "direction",
        "error",
    }
)
