"""The whole ASGI application on a real socket in the test's own event loop (uvicorn), so
that the worker's pushes, the in-memory channel layer and the gateway's streams meet."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

import uvicorn
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.core.asgi import get_asgi_application

from ctiboard.gateway.models import ApiToken, Scope
from ctiboard.ops.application import build_application
from ctiboard.tenancy.models import Tenant


@contextlib.asynccontextmanager
async def serving() -> AsyncIterator[str]:
    """The host's URL while the application serves on a free port of 127.0.0.1."""
    # Built here, not imported: Django's middleware reads its settings when the handler is made,
    # and the test's settings (plain HTTP: no redirect to https) hold only from now on.
    config = uvicorn.Config(
        build_application(get_asgi_application()),
        host="127.0.0.1",
        port=0,
        lifespan="off",
        log_level="warning",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), task
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def gateway_url(host: str, tenant: Tenant) -> str:
    return f"{host}/cti/{tenant.account}/v1"


async def api_token(user: User, tenant: Tenant, scope: str = Scope.READ) -> tuple[ApiToken, str]:
    return await sync_to_async(ApiToken.issue)(user=user, tenant=tenant, name="tool", scope=scope)
