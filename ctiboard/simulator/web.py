"""What the simulator's two HTTP faces share: JSON bodies, error answers, request ids."""

import json
import logging
import math
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeGuard

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send

from ctiboard.simulator.model import SimError

logger = logging.getLogger("ctiboard.simulator")


async def json_body(request: Request, *, optional: bool = False) -> Any:
    raw = await request.body()
    if not raw.strip():
        if optional:
            return {}
        raise SimError("the request needs a JSON body")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise SimError("the request body is not valid JSON") from None


def is_number(value: Any) -> TypeGuard[float]:
    # json.loads accepts NaN and Infinity; neither is a usable number here.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


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


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def sim_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SimError)
    return JSONResponse({"error": str(exc)}, status_code=exc.status)
