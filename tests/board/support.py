"""Helpers shared by the board's tests: logging in, sockets, tiles and state changes."""

import re
from datetime import timedelta

from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from ctiboard.asgi import application
from ctiboard.cti.events import StateEvent
from ctiboard.ingest import writer
from ctiboard.tenancy.models import Extension
from tests.conftest import PASSWORD, Company

# What a browser sends with the board page's handshake: its origin, and the host it came to
# (the socket must come from exactly that origin: ops.origins).
PAGE = [(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")]


def session_cookie(user: User) -> bytes:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def connect(user: User | None, account: str) -> WebsocketCommunicator:
    headers = list(PAGE)
    if user is not None:
        headers.append((b"cookie", await sync_to_async(session_cookie)(user)))
    return WebsocketCommunicator(application, f"/ws/board/{account}/", headers=headers)


def tile_ids(html: str) -> set[str]:
    return set(re.findall(r'<article id="(ext-\d+)"', html))


def state(number: str, line: str, presence: str = "available") -> StateEvent:
    return StateEvent(
        extension=number, customer=None, line=line, presence=presence, updated=None, raw={}
    )


async def apply(company: Company, *events: StateEvent) -> None:
    def write() -> None:
        tenant_state = writer.load_state(company.tenant.pk)
        tenant_state.account = company.tenant.account
        writer.apply_states(tenant_state, list(events))

    await sync_to_async(write)()


def login(client: Client, user: User) -> Client:
    assert client.login(username=user.username, password=PASSWORD)
    return client


def tile_numbers(html: str) -> list[str]:
    return re.findall(r'data-number="([^"]+)"', html)


def in_call(
    extension: Extension, partner: str, direction: str = "inbound", state: str = "in-call"
) -> None:
    extension.line = "ringing" if state == "ringing" else "in-use"
    extension.line_since = timezone.now() - timedelta(seconds=42)
    extension.call_state = state
    extension.call_partner = partner
    extension.call_direction = direction
    extension.call_since = extension.line_since
    extension.seq += 1
    extension.save()


async def open_socket(
    user: User, company: Company, query: str = "", cookie: bytes | None = None
) -> WebsocketCommunicator:
    # A login saves the user, which resyncs his open sockets: reuse one for several sockets.
    cookie = cookie or await sync_to_async(session_cookie)(user)
    socket = WebsocketCommunicator(
        application,
        f"/ws/board/{company.tenant.account}/?{query}",
        headers=[*PAGE, (b"cookie", cookie)],
    )
    assert (await socket.connect())[0]
    return socket


async def receive_sync(socket: WebsocketCommunicator) -> list[str]:
    """The messages of one sync: the PBX status comes last."""
    messages = [await socket.receive_from()]
    while 'id="pbx-status"' not in messages[-1]:
        messages.append(await socket.receive_from())
    return messages
