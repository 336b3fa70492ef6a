"""NFON's CTI API, per tenant under ``/cti/<K-Account>/v1/``: the same paths, bodies, status
codes and events as NFON's (simulator/README.md, "The API"), answered for one user's API token
and filtered by the one rule.

Django async views, not a Channels consumer: a StreamingHttpResponse runs under Daphne as any
view does, Django cancels its iterator when the client goes, and the stream can read its own
channel meanwhile (a consumer dispatches one message at a time, so a stream would block it).
"""

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import wraps
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from ctiboard.calls import originate
from ctiboard.calls.models import CallAttempt, CallStatus
from ctiboard.calls.placing import CallRefused, gate, place
from ctiboard.cti.client import CallNotFound, CTIError
from ctiboard.lib.accept import negotiate
from ctiboard.live.groups import user_group
from ctiboard.tenancy.models import Extension

from . import jwts, nfon
from .access import Grant, grant_for, grant_of, touch
from .models import find
from .streams import CallStream, StateStream

View = Callable[..., Awaitable[HttpResponseBase]]
BEARER = re.compile(r"^Bearer +(\S+) *$", re.IGNORECASE)
CALL_UUID = re.compile(r"^\w{8}-\w{4}-\w{4}-\w{4}-\w{12}$")  # the spec's own pattern
# E.164 without "+" or "00", as the spec asks for numbers in the global context.
GLOBAL_NUMBER = re.compile(r"^[1-9]\d{6,14}$")


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message

    def response(self) -> HttpResponse:
        response = JsonResponse({"error": self.message}, status=self.status)
        if self.status == 401:
            response["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return response


def endpoint(*methods: str) -> Callable[[View], Any]:
    """An API view: only these methods, errors as ``{"error": ...}``, an ``X-Request-Id``."""

    def decorate(view: View) -> View:
        @csrf_exempt  # bearer tokens, no cookies: nothing to forge
        @wraps(view)
        async def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            try:
                if request.method not in methods:
                    raise ApiError(405, f"{request.method} is not allowed here")
                response = await view(request, *args, **kwargs)
            except ApiError as error:
                response = error.response()
            response["X-Request-Id"] = str(uuid.uuid4())
            return response

        return wrapped

    return decorate


def _bearer(request: HttpRequest) -> str:
    match = BEARER.match(request.headers.get("authorization", ""))
    if match is None:
        raise ApiError(401, "a bearer token is required")
    return match[1]


def _authorized(request: HttpRequest, account: str, kind: jwts.Kind = "access") -> Grant:
    try:
        claims = jwts.verify(_bearer(request), kind, account)
    except jwts.InvalidToken as exc:
        raise ApiError(401, str(exc)) from None
    grant = grant_for(claims)
    if grant is None:
        raise ApiError(401, "the API token is revoked or expired, or its user has no access")
    touch(grant.token)
    return grant


async def _grant(request: HttpRequest, account: str, kind: jwts.Kind = "access") -> Grant:
    return await sync_to_async(_authorized)(request, account, kind)


def _json_body(request: HttpRequest) -> Any:
    try:
        return json.loads(request.body or b"null")
    except (ValueError, RecursionError):
        raise ApiError(400, "the request body is not valid JSON") from None


# --- login ---------------------------------------------------------------------------------


def _login(request: HttpRequest, account: str) -> dict[str, str]:
    body = _json_body(request)
    if not (
        isinstance(body, dict)
        and isinstance(body.get("username"), str)
        and isinstance(body.get("password"), str)
    ):
        raise ApiError(400, "the body must be a JSON object with string username and password")
    token = find(body["password"])
    grant = grant_of(token)
    if (
        grant is None
        or grant.tenant.account != account
        or grant.user.get_username() != body["username"]
    ):
        raise ApiError(401, "invalid credentials")
    touch(grant.token)
    return jwts.pair(grant.token)


@endpoint("POST", "PUT")
async def login(request: HttpRequest, account: str) -> HttpResponseBase:
    """POST: the ctiboard username and an API token's secret; PUT: the refresh token."""
    if request.method == "PUT":
        grant = await _grant(request, account, "refresh")
        return JsonResponse(await sync_to_async(jwts.pair)(grant.token))
    return JsonResponse(await sync_to_async(_login)(request, account))


# --- extensions and their states -----------------------------------------------------------


def _visible(grant: Grant) -> list[Extension]:
    return list(
        Extension.objects.visible_to(grant.user).filter(tenant=grant.tenant).order_by("number")
    )


@endpoint("GET")
async def data(request: HttpRequest, account: str) -> HttpResponseBase:
    grant = await _grant(request, account)
    extensions = await sync_to_async(_visible)(grant)
    return JsonResponse([nfon.extension_data(e, account) for e in extensions], safe=False)


def _stream(events: AsyncIterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(events, content_type=f"{nfon.SSE}; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # tell reverse proxies not to buffer the stream
    return response


@endpoint("GET")
async def states(request: HttpRequest, account: str) -> HttpResponseBase:
    """SSE (every visible state first, then each change) or, for JSON, a snapshot filtered
    by repeated ``?extension=``."""
    grant = await _grant(request, account)
    media = negotiate(request.headers.get("accept", ""), (nfon.SSE, nfon.JSON))
    if media is None:
        raise ApiError(406, f"Accept must allow {nfon.SSE} or {nfon.JSON}")
    if media == nfon.SSE:
        return _stream(StateStream(grant).events())
    extensions = await sync_to_async(_visible)(grant)
    wanted = set(request.GET.getlist("extension"))
    return JsonResponse(
        [nfon.state_event(e, account) for e in extensions if not wanted or e.number in wanted],
        safe=False,
    )


# --- calls ---------------------------------------------------------------------------------


@endpoint("GET", "POST")
async def calls(request: HttpRequest, account: str) -> HttpResponseBase:
    grant = await _grant(request, account)
    accept = request.headers.get("accept", "")
    if request.method == "GET":
        if negotiate(accept, (nfon.SSE,)) is None:
            raise ApiError(406, f"the call stream is only available as {nfon.SSE}")
        return _stream(CallStream(grant).events())
    media = negotiate(accept, (nfon.JSON, nfon.SSE))
    if media is None:
        raise ApiError(406, f"Accept must allow {nfon.JSON} or {nfon.SSE}")
    if not grant.token.may_call:
        raise ApiError(403, "this API token may not start calls (its scope is read)")
    callee, context = await sync_to_async(_target)(grant, _json_body(request))
    if media == nfon.JSON:
        attempt = await _place(grant, callee, context)
        return JsonResponse(_start_event(attempt, account), status=202)
    # Subscribed before the call is placed: no step of it can be missed.
    layer = get_channel_layer()
    assert layer is not None
    channel = await layer.new_channel("gateway.call.")
    group = user_group(grant.user.pk)
    await layer.group_add(group, channel)
    try:
        attempt = await _place(grant, callee, context)
    except BaseException:
        await layer.group_discard(group, channel)
        raise
    return _stream(_progress(attempt, layer, channel, group))


def _target(grant: Grant, body: Any) -> tuple[str, str]:
    """(callee, callee context) of a click-to-dial body; the caller must be the user's own
    extension and the callee one the board would let him call."""
    membership, account = grant.membership, grant.tenant.account
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    for key, value in body.items():
        if key == "timeout":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ApiError(400, "timeout must be an integer")
        elif not isinstance(value, str):
            raise ApiError(400, f"{key} must be a string")
    caller, callee = body.get("caller", ""), body.get("callee", "")
    if not caller:
        raise ApiError(400, "caller is required")
    if not callee:
        raise ApiError(400, "callee is required")
    try:
        gate(membership)
    except CallRefused as refused:
        raise ApiError(refused.status, refused.message) from None
    own = membership.own_extension
    assert own is not None
    caller_context = body.get("caller_context") or account
    if (caller, caller_context) != (own.number, account) or body.get("extension") not in (
        None,
        "",
        own.number,
    ):
        raise ApiError(403, f"calls start from your own extension, {own.number}")
    context = body.get("callee_context") or account
    try:
        if context == "global":
            if not GLOBAL_NUMBER.match(callee):
                raise ApiError(400, "callee must be an international number without + or 00")
            gate(membership, callee)
            return callee, "global"
        if context != account:
            raise ApiError(400, f"callee_context must be {account} or global")
        # The same answer whether the extension does not exist or is not the user's to see.
        target = (
            Extension.objects.visible_to(grant.user)
            .filter(tenant=grant.tenant, number=callee)
            .first()
        )
        if target is None:
            raise ApiError(400, f"there is no extension {callee}")
        gate(membership, target)
        return target.number, account
    except CallRefused as refused:
        raise ApiError(refused.status, refused.message) from None


async def _place(grant: Grant, callee: str, context: str) -> CallAttempt:
    try:
        attempt = await place(grant.user, grant.membership, callee, context)
    except CallRefused as refused:
        raise ApiError(refused.status, refused.message) from None
    if attempt.status == CallStatus.FAILED:
        raise ApiError(502, attempt.error or "the PBX did not take the call")
    return attempt


def _start_event(attempt: CallAttempt, account: str) -> dict[str, str]:
    return {
        "uuid": attempt.uuid,
        "caller": attempt.caller,
        "caller_context": account,
        "callee": attempt.callee,
        "callee_context": attempt.callee_context,
        "direction": "outbound",
        "state": "start",
        "updated": nfon.stamp(attempt.created),
        "extension": attempt.caller,
    }


async def _progress(
    attempt: CallAttempt, layer: Any, channel: str, group: str
) -> AsyncIterator[bytes]:
    """The POST's own stream: ``start``, then each step of this call until ``end``."""
    try:
        yield nfon.frame({"uuid": attempt.uuid, "state": "start", "updated": nfon.stamp()})
        async with asyncio.timeout(originate.FOLLOW_TIMEOUT):
            while True:
                message = await layer.receive(channel)
                payload = message.get("attempt")
                if message.get("type") != "call.progress" or payload["id"] != attempt.pk:
                    continue
                status, error = payload["status"], payload["error"]
                if status == CallStatus.FAILED:
                    # ctiboard lost the call (the PBX stopped reporting): its end, unexplained.
                    status, error = CallStatus.ENDED, "unspecified"
                event = {"uuid": attempt.uuid, "state": status, "updated": nfon.stamp()}
                if error:
                    event["error"] = error
                yield nfon.frame(event)
                if status == CallStatus.ENDED:
                    return
    finally:
        await layer.group_discard(group, channel)


@endpoint("DELETE")
async def cancel(request: HttpRequest, account: str, call_uuid: str) -> HttpResponseBase:
    """Cancel (or hang up) a call this user started, through the gateway or the board."""
    grant = await _grant(request, account)
    if not grant.token.may_call:
        raise ApiError(403, "this API token may not end calls (its scope is read)")
    if CALL_UUID.fullmatch(call_uuid) is None:
        raise ApiError(400, "malformed call uuid")
    attempt = await (
        CallAttempt.objects.filter(tenant=grant.tenant, user=grant.user, uuid=call_uuid)
        .order_by("-created")
        .afirst()
    )
    if attempt is None:
        raise ApiError(404, "no such call")
    try:
        await originate.cancel(attempt, grant.tenant)
    except CallNotFound:
        raise ApiError(404, "no such call") from None
    except CTIError as exc:
        raise ApiError(502, f"the PBX refused to cancel the call: {exc}") from None
    return HttpResponse(status=204)
