"""The simulator as one ASGI app: NFON's API under /v1, the control API under /_sim/."""

import re

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from ctiboard.simulator.api import Api
from ctiboard.simulator.control_api import Control
from ctiboard.simulator.model import SimError
from ctiboard.simulator.simulator import Simulator
from ctiboard.simulator.web import RequestIdMiddleware, http_error, sim_error

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
        exception_handlers={HTTPException: http_error, SimError: sim_error},
    )
