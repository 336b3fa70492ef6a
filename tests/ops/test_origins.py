"""The board socket's handshake is accepted only from the page's exact origin (scheme, host
and port of the address the request came to) or a CSRF_TRUSTED_ORIGINS entry; a handshake
without Origin is refused. Through the full ASGI application, with a valid login."""

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User

from ctiboard.asgi import application
from tests.board.support import session_cookie
from tests.conftest import Company

pytestmark = pytest.mark.django_db(transaction=True)

HOST = (b"host", b"127.0.0.1:8000")


async def handshake(owner: User, company: Company, *headers: tuple[bytes, bytes]) -> bool:
    cookie = await sync_to_async(session_cookie)(owner)
    socket = WebsocketCommunicator(
        application, f"/ws/board/{company.tenant.account}/", headers=[*headers, (b"cookie", cookie)]
    )
    connected, _ = await socket.connect()
    if connected:
        await socket.disconnect()
    return connected


@pytest.fixture(autouse=True)
def _behind_a_proxy(settings) -> None:  # type: ignore[no-untyped-def]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.CSRF_TRUSTED_ORIGINS = ["https://wall.example", "https://*.screens.example"]


async def test_the_exact_origin_is_accepted(owner: User, company: Company) -> None:
    assert await handshake(owner, company, HOST, (b"origin", b"http://127.0.0.1:8000"))


@pytest.mark.parametrize(
    "origin",
    [
        pytest.param(b"http://127.0.0.1:8001", id="other port"),
        pytest.param(b"http://127.0.0.1", id="default port"),
        pytest.param(b"https://127.0.0.1:8000", id="other scheme"),
        pytest.param(b"http://localhost:8000", id="other allowed host"),
        pytest.param(b"http://evil.example:8000", id="foreign host"),
        pytest.param(b"http://127.0.0.1.evil.example:8000", id="host as a prefix"),
        pytest.param(b"null", id="opaque origin"),
    ],
)
async def test_another_origin_is_refused(owner: User, company: Company, origin: bytes) -> None:
    assert not await handshake(owner, company, HOST, (b"origin", origin))


async def test_a_handshake_without_origin_is_refused(owner: User, company: Company) -> None:
    # Browsers always send one: without it, it is a program holding someone's cookie.
    assert not await handshake(owner, company, HOST)


async def test_a_host_outside_allowed_hosts_is_refused(owner: User, company: Company) -> None:
    assert not await handshake(
        owner, company, (b"host", b"evil.example"), (b"origin", b"http://evil.example")
    )


async def test_behind_a_tls_proxy_the_origin_is_https(owner: User, company: Company) -> None:
    proxied = [(b"host", b"localhost"), (b"x-forwarded-proto", b"https")]
    assert await handshake(owner, company, *proxied, (b"origin", b"https://localhost"))
    assert not await handshake(owner, company, *proxied, (b"origin", b"http://localhost"))
    # Without the proxy's word the request came over plain HTTP.
    assert not await handshake(
        owner, company, (b"host", b"localhost"), (b"origin", b"https://localhost")
    )


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        (b"https://wall.example", True),
        (b"http://wall.example", False),
        (b"https://wall.example:8443", False),
        (b"https://lobby.screens.example", True),
        (b"http://lobby.screens.example", False),
        (b"https://screens.example.evil.example", False),
    ],
)
async def test_trusted_origins_are_accepted(
    owner: User, company: Company, origin: bytes, accepted: bool
) -> None:
    assert await handshake(owner, company, HOST, (b"origin", origin)) is accepted


async def test_a_handshake_without_host_is_refused(owner: User, company: Company) -> None:
    # Nothing to compare the origin with (every HTTP/1.1 client sends Host).
    assert not await handshake(owner, company, (b"origin", b"http://127.0.0.1:8000"))
