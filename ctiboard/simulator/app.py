"""NFON's CTI API (spec/nfon-cti-api.yaml) as a Starlette app, plus the control API.

API routes sit under ``/v1``, the path of the spec's server URL, so a client configured with
NFON's base URL works unchanged; the control API for tests, demos and benchmarks sits under
``/_sim/`` and needs no auth (it is meant for localhost).
"""

import asyncio
import hmac
import json
import logging
import math
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeGuard, cast

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Message, Receive, Scope, Send

from ctiboard.simulator.core import (
    CALL_ERRORS,
    DEFAULT_TIMEOUT,
    MAX_TIMEOUT,
    PROFILES,
    STREAM_FAULTS,
    NotFound,
    OriginateRequest,
    PhoneBehaviour,
    PhoneMode,
    SimError,
    SimTenant,
    Simulator,
    Subscription,
    frame,
)
from ctiboard.simulator.tokens import InvalidToken, TokenType

logger = logging.getLogger("ctiboard.simulator")

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


def negotiate(accept: str, offers: Sequence[str]) -> str | None:
    """The offer the Accept header prefers (ties go to the earlier offer, the default)."""
    if not accept.strip():
        return offers[0]
    ranges: list[tuple[str, float]] = []
    for part in accept.split(","):
        media, _, params = part.partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    quality = 0.0
        ranges.append((media.strip().lower(), quality))
    best, best_quality = None, 0.0
    for offer in offers:
        wildcard = offer.split("/")[0] + "/*"
        specificity, quality = -1, 0.0
        for media, media_quality in ranges:
            rank = {offer: 2, wildcard: 1, "*/*": 0}.get(media, -1)
            if rank > specificity:
                specificity, quality = rank, media_quality
        if quality > best_quality:
            best, best_quality = offer, quality
    return best


async def _json_body(request: Request, *, optional: bool = False) -> Any:
    raw = await request.body()
    if not raw.strip():
        if optional:
            return {}
        raise SimError("the request needs a JSON body")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise SimError("the request body is not valid JSON") from None


def _is_number(value: Any) -> TypeGuard[float]:
    # json.loads accepts NaN and Infinity; neither is a usable number here.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


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
        self.tenant.counters.events_sent += frames

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
                    done, _ = await asyncio.wait({getter}, timeout=self.tenant.keepalive)
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


class RequestIdMiddleware:
    """X-Request-Id on every response, including the 500 for an unexpected error.

    Starlette's own error middleware sits outside user middleware, so its 500 would lack the
    header; catching here keeps every response uniform and the server running.
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = str(uuid.uuid4()).encode()
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message = {
                    **message,
                    "headers": [*message["headers"], (b"x-request-id", request_id)],
                }
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            logger.exception("simulator request %s %s failed", scope["method"], scope["path"])
            if not started:
                response = JSONResponse({"error": "internal simulator error"}, status_code=500)
                await response(scope, receive, send_with_id)


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
            tenant.counters.non_conforming_user_agents += 1
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

    def _authenticate(self, request: Request, kind: TokenType) -> SimTenant:
        match = BEARER.match(request.headers.get("authorization", ""))
        if match is None:
            self._check_user_agent(request, None)
            raise _unauthorized("a bearer token is required")
        try:
            claims = self.sim.tokens.verify(match[1], kind)
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
        tenant.counters.requests += 1
        if authorized and tenant.take_unauthorized():
            raise _unauthorized("token rejected (injected fault)")
        method, path = request.method, request.scope["route"].path
        status = tenant.take_http_fault(method, path)
        if status is not None:
            headers = {"Retry-After": "1"} if status == 503 else None
            raise _error(status, f"injected {status} on {method} {path}", headers)
        delay = tenant.take_delay(method, path)
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
            body = await _json_body(request)
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
        if not hmac.compare_digest(body["password"].encode(), tenant.password.encode()):
            raise _unauthorized("invalid credentials")
        return JSONResponse(self._token_pair(tenant))

    def _token_pair(self, tenant: SimTenant) -> dict[str, str]:
        return {
            "access-token": self.sim.tokens.issue(tenant, "access", tenant.token_ttl),
            "refresh-token": self.sim.tokens.issue(tenant, "refresh", tenant.refresh_ttl),
        }

    async def jwks(self, request: Request) -> Response:
        self._check_user_agent(request, None)
        return JSONResponse(self.sim.tokens.jwks())

    async def data(self, request: Request) -> Response:
        tenant = await self._tenant(request)
        return JSONResponse(tenant.extension_data())

    async def states(self, request: Request) -> Response | EventStream:
        tenant = await self._tenant(request)
        media = negotiate(request.headers.get("accept", ""), (SSE, JSON))
        if media is None:
            raise _error(406, f"Accept must allow {SSE} or {JSON}")
        if media == JSON:
            numbers = request.query_params.getlist("extension")
            return JSONResponse(tenant.states(numbers or None))
        # Subscribe before taking the snapshot, with no await between: no change falls between.
        subscription = tenant.subscribe("states")
        return EventStream(tenant, subscription, [frame(state) for state in tenant.states()])

    async def calls(self, request: Request) -> Response | EventStream:
        tenant = await self._tenant(request)
        accept = request.headers.get("accept", "")
        if request.method == "GET":
            if negotiate(accept, (SSE,)) is None:
                raise _error(406, f"the call stream is only available as {SSE}")
            return EventStream(tenant, tenant.subscribe("calls"), [])
        media = negotiate(accept, (JSON, SSE))
        if media is None:
            raise _error(406, f"Accept must allow {JSON} or {SSE}")
        try:
            originate = _originate_request(
                tenant, await _json_body(request), request.headers.get("x-cloudya-device-uuid")
            )
            call = tenant.originate(originate)
        except NotFound as exc:
            # An unknown extension makes the request invalid; 404 is for unknown calls.
            raise _error(400, str(exc)) from None
        if media == JSON:
            return JSONResponse(call.start_event, status_code=202)
        subscription = tenant.watch(call)
        start = {key: call.start_event[key] for key in ("uuid", "state", "updated")}
        return EventStream(tenant, subscription, [frame(start)])

    async def cancel(self, request: Request) -> Response:
        tenant = await self._tenant(request)
        call_uuid = request.path_params["uuid"]
        if CALL_UUID.fullmatch(call_uuid) is None:
            raise _error(400, "malformed call uuid")
        tenant.cancel(call_uuid)
        return Response(status_code=204)


def _originate_request(tenant: SimTenant, body: Any, device_uuid: str | None) -> OriginateRequest:
    """Validate a click-to-dial body against the spec's `call` schema and its prose."""
    if not isinstance(body, dict):
        raise SimError("the body must be a JSON object")
    # Every property the schema declares must have its declared type, even the read-only ones
    # the simulator then ignores: a client sending them wrong has a bug worth a 400.
    for key, value in body.items():
        if key == "timeout":
            if not _is_number(value) or value != int(value):
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


# --- control API ------------------------------------------------------------------------------


class _Fields:
    """Typed access to a control request's JSON object, answering 400 on a wrong type."""

    def __init__(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise SimError("the body must be a JSON object")
        self.body = body

    def __contains__(self, key: str) -> bool:
        return key in self.body

    def string(self, key: str, default: str | None = None) -> str:
        value = self.body.get(key, default)
        if not isinstance(value, str):
            raise SimError(f"{key} must be a string")
        return value

    def optional_string(self, key: str) -> str | None:
        return None if self.body.get(key) is None else self.string(key)

    def number(self, key: str, default: float | None = None, *, minimum: float = 0.0) -> float:
        value = self.body.get(key, default)
        if not _is_number(value) or value < minimum:
            raise SimError(f"{key} must be a number >= {minimum}")
        return float(value)

    def positive(self, key: str, default: float | None = None) -> float:
        value = self.number(key, default)
        if value <= 0:
            raise SimError(f"{key} must be positive")
        return value

    def optional_positive(self, key: str) -> float | None:
        return None if self.body.get(key) is None else self.positive(key)

    def integer(self, key: str, default: int | None = None, *, minimum: int = 0) -> int:
        value = self.body.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise SimError(f"{key} must be an integer >= {minimum}")
        return value

    def boolean(self, key: str, default: bool | None = None) -> bool:
        value = self.body.get(key, default)
        if not isinstance(value, bool):
            raise SimError(f"{key} must be true or false")
        return value


def _behaviour(fields: _Fields) -> PhoneBehaviour:
    mode = fields.string("mode", "answer")  # PhoneBehaviour checks it is a known mode
    hangup_after = (
        None
        if "hangup_after" in fields and fields.body["hangup_after"] is None
        else fields.number("hangup_after", 60.0)
    )
    return PhoneBehaviour(cast(PhoneMode, mode), fields.number("answer_after", 2.0), hangup_after)


def _oddities(fields: _Fields) -> dict[str, bool]:
    """`oddities`: a profile name (spec, realistic) or an object of booleans."""
    value = fields.body.get("oddities", {})
    if isinstance(value, str):
        if value not in PROFILES:
            raise SimError(f"oddities must be one of {', '.join(PROFILES)} or an object")
        return PROFILES[value]
    nested = _Fields(value)
    return {key: nested.boolean(key) for key in nested.body}


def _directory(value: Any) -> int | list[tuple[str, str]]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, list):
        raise SimError("extensions must be a count or a list of {number, name}")
    directory = []
    for entry in value:
        if not isinstance(entry, dict) or not isinstance(entry.get("number"), str):
            raise SimError("each extension needs a string number")
        name = entry.get("name", f"Extension {entry['number']}")
        if not isinstance(name, str):
            raise SimError("extension names must be strings")
        directory.append((entry["number"], name))
    return directory


class Control:
    """``/_sim/``: create and inspect tenants, script calls, steer traffic, inject faults."""

    def __init__(self, simulator: Simulator) -> None:
        self.sim = simulator

    def routes(self) -> list[Route]:
        tenant = "/tenants/{account}"
        return [
            Route("/tenants", self.tenants, methods=["GET", "POST"]),
            Route(tenant, self.tenant, methods=["GET", "PATCH", "DELETE"]),
            Route(f"{tenant}/states", self.states, methods=["GET"]),
            Route(f"{tenant}/extensions/{{number}}/state", self.set_state, methods=["PUT"]),
            Route(f"{tenant}/extensions/{{number}}/behaviour", self.behaviour, methods=["PUT"]),
            Route(f"{tenant}/numbers/{{number}}/behaviour", self.remote_behaviour, methods=["PUT"]),
            Route(f"{tenant}/calls", self.calls, methods=["GET", "POST"]),
            Route(f"{tenant}/calls/{{uuid}}/{{action}}", self.call_action, methods=["POST"]),
            Route(f"{tenant}/traffic", self.traffic, methods=["GET", "PUT"]),
            Route(f"{tenant}/counters", self.counters, methods=["GET"]),
            Route(f"{tenant}/faults", self.faults, methods=["GET", "POST", "DELETE"]),
            Route(f"{tenant}/oddities", self.oddities, methods=["GET", "PUT"]),
        ]

    def _tenant(self, request: Request) -> SimTenant:
        return self.sim.tenant(request.path_params["account"])

    async def tenants(self, request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse([tenant.describe() for tenant in self.sim.tenants.values()])
        fields = _Fields(await _json_body(request))
        seed = fields.body.get("seed")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise SimError("seed must be an integer")
        tenant = self.sim.add_tenant(
            account=fields.string("account"),
            username=fields.string("username"),
            password=fields.string("password"),
            extensions=_directory(fields.body.get("extensions", 10)),
            seed=seed,
            traffic_rate=fields.number("traffic_rate", 0.0),
            time_scale=fields.positive("time_scale", 1.0),
            token_ttl=fields.positive("token_ttl", 300.0),
            refresh_ttl=fields.positive("refresh_ttl", 3600.0),
            keepalive=fields.optional_positive("keepalive"),
            extended_presence=fields.boolean("extended_presence", True),
            oddities=_oddities(fields),
        )
        return JSONResponse(tenant.describe(), status_code=201)

    async def tenant(self, request: Request) -> Response:
        tenant = self._tenant(request)
        if request.method == "DELETE":
            self.sim.remove_tenant(tenant.account)
            return Response(status_code=204)
        if request.method == "PATCH":
            fields = _Fields(await _json_body(request))
            tenant.update_settings(**{key: fields.positive(key) for key in fields.body})
        return JSONResponse(tenant.describe())

    async def states(self, request: Request) -> Response:
        return JSONResponse(self._tenant(request).states())

    async def set_state(self, request: Request) -> Response:
        tenant = self._tenant(request)
        fields = _Fields(await _json_body(request))
        line, presence = fields.optional_string("line"), fields.optional_string("presence")
        if line is None and presence is None:
            raise SimError("give line and/or presence")
        number = request.path_params["number"]
        tenant.set_state(number, line=line, presence=presence)
        return JSONResponse(tenant.states([number])[0])

    async def behaviour(self, request: Request) -> Response:
        tenant = self._tenant(request)
        behaviour = _behaviour(_Fields(await _json_body(request)))
        tenant.set_behaviour(request.path_params["number"], behaviour)
        return JSONResponse(_describe_behaviour(behaviour))

    async def remote_behaviour(self, request: Request) -> Response:
        tenant = self._tenant(request)
        behaviour = _behaviour(_Fields(await _json_body(request)))
        tenant.set_remote_behaviour(request.path_params["number"], behaviour)
        return JSONResponse(_describe_behaviour(behaviour))

    async def calls(self, request: Request) -> Response:
        tenant = self._tenant(request)
        if request.method == "GET":
            return JSONResponse([call.describe() for call in tenant.active_calls()])
        fields = _Fields(await _json_body(request))
        targets = fields.body.get("to")
        if isinstance(targets, str):
            targets = [targets]
        if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
            raise SimError("to must be an extension number or a list of them")
        call = tenant.ring(fields.string("from"), targets)
        return JSONResponse(call.describe(), status_code=201)

    async def call_action(self, request: Request) -> Response:
        tenant = self._tenant(request)
        call_uuid, action = request.path_params["uuid"], request.path_params["action"]
        if action == "answer":
            fields = _Fields(await _json_body(request, optional=True))
            call = tenant.answer(call_uuid, fields.optional_string("extension"))
            return JSONResponse(call.describe())
        if action == "reject":
            tenant.reject(call_uuid)
        elif action == "hangup":
            tenant.hangup(call_uuid)
        else:
            raise _error(404, f"unknown call action {action}; use answer, reject or hangup")
        return Response(status_code=204)

    async def traffic(self, request: Request) -> Response:
        tenant = self._tenant(request)
        if request.method == "PUT":
            fields = _Fields(await _json_body(request))
            if "rate" in fields:
                tenant.set_traffic_rate(fields.number("rate"))
            if "paused" in fields:
                if fields.boolean("paused"):
                    tenant.traffic.pause()
                else:
                    tenant.traffic.resume()
        return JSONResponse(tenant.traffic.describe())

    async def counters(self, request: Request) -> Response:
        return JSONResponse(self._tenant(request).counters_snapshot())

    async def faults(self, request: Request) -> Response:
        tenant = self._tenant(request)
        if request.method == "DELETE":
            tenant.clear_faults()
            return Response(status_code=204)
        if request.method == "GET":
            return JSONResponse(tenant.faults.describe())
        fields = _Fields(await _json_body(request))
        kind = fields.string("kind")
        result: dict[str, Any] = {"kind": kind}
        if kind in STREAM_FAULTS:
            result["streams"] = tenant.inject_stream_fault(
                kind, fields.string("stream", "all"), fields.string("variant", "")
            )
        elif kind == "http_error":
            status = fields.integer("status", 500, minimum=400)
            if status > 599:
                raise SimError("status must be between 400 and 599")
            tenant.add_http_fault(
                status, fields.string("endpoint", "*"), fields.integer("count", 1, minimum=1)
            )
        elif kind == "delay":
            seconds = fields.positive("seconds")
            count = None if fields.body.get("count") is None else fields.integer("count", minimum=1)
            tenant.set_delay(seconds, fields.string("endpoint", "*"), count)
        else:
            kinds = ", ".join((*STREAM_FAULTS, "http_error", "delay"))
            raise SimError(f"kind must be one of {kinds}")
        result["faults"] = tenant.faults.describe()
        return JSONResponse(result)

    async def oddities(self, request: Request) -> Response:
        tenant = self._tenant(request)
        if request.method == "PUT":
            fields = _Fields(await _json_body(request))
            tenant.set_oddities(**{key: fields.boolean(key) for key in fields.body})
        return JSONResponse(tenant.describe()["oddities"])


def _describe_behaviour(behaviour: PhoneBehaviour) -> dict[str, Any]:
    return {
        "mode": behaviour.mode,
        "answer_after": behaviour.answer_after,
        "hangup_after": behaviour.hangup_after,
    }


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _sim_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SimError)
    return JSONResponse({"error": str(exc)}, status_code=exc.status)


# The spec's server URL is https://providersupportdata.cloud-cfg.com/{version}, version v1.
API_PREFIX = "/v1"
_API_PATHS = re.compile(r"^/(login|\.well-known/jwks\.json|extensions/phone/.*)$")


async def _not_found(request: Request) -> Response:
    """404 for every other path; a client that forgot the /v1 of the base URL is told so."""
    path = request.url.path.removeprefix(request.scope.get("root_path", ""))
    if _API_PATHS.match(path):
        message = (
            f"not found: NFON's CTI API is served under {API_PREFIX}; "
            f"configure the base URL with {API_PREFIX} (e.g. {API_PREFIX}{path})"
        )
    else:
        message = "not found"
    return JSONResponse({"error": message}, status_code=404)


def build_app(simulator: Simulator) -> Starlette:
    """The simulator's ASGI app; works at ``/`` and mounted under a prefix (ASGI root_path)."""
    return Starlette(
        routes=[
            Mount(API_PREFIX, routes=Api(simulator).routes()),
            Mount("/_sim", routes=Control(simulator).routes()),
            Route("/{path:path}", _not_found, methods=["GET", "HEAD", "POST", "PUT", "DELETE"]),
        ],
        middleware=[Middleware(RequestIdMiddleware)],
        exception_handlers={HTTPException: _http_error, SimError: _sim_error},
    )
