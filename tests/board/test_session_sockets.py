"""A board socket lives only as long as the login session it was opened with: logout, a new
password, deactivation, "Sign out everywhere" and the session's expiry close it (4403, which
board.js answers by going to the login page), each within a second; other sessions that are
still valid keep theirs. Through the full ASGI application and Django's own views."""

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import AsyncClient, Client
from django.utils import timezone

from ctiboard.asgi import application
from ctiboard.lib.sessions import session_model
from tests.board.support import PAGE, apply, receive_sync, state, tile_ids
from tests.conftest import PASSWORD, Company

pytestmark = pytest.mark.django_db(transaction=True)

NEW_PASSWORD = "a quite different passphrase 42"
SIGNED_OUT = {"type": "websocket.close", "code": 4403}


def logged_in(user: User) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


async def board_socket(client: Client | AsyncClient, company: Company) -> WebsocketCommunicator:
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    socket = WebsocketCommunicator(
        application, f"/ws/board/{company.tenant.account}/", headers=[*PAGE, (b"cookie", cookie)]
    )
    assert (await socket.connect())[0]
    await receive_sync(socket)
    return socket


async def closed(socket: WebsocketCommunicator, within: float = 1.0) -> dict[str, object]:
    """The socket's next message: its close, if it came within ``within`` seconds."""
    return await socket.receive_output(timeout=within)  # type: ignore[no-any-return]


async def still_live(socket: WebsocketCommunicator, company: Company) -> None:
    """Open, and still given the tenant's changes."""
    assert await socket.receive_nothing(timeout=0.3)
    await apply(company, state("101", "ringing"))
    assert tile_ids(await socket.receive_from()) == {f"ext-{company.extensions[1].pk}"}
    await apply(company, state("101", "idle"))
    await socket.receive_from()


@pytest.fixture
def staff_owner(owner: User) -> User:
    """The owner may use the admin: its password view is where a user changes his own."""
    owner.is_staff = True
    owner.save(update_fields=["is_staff"])
    return owner


@pytest.fixture
def root(db: None) -> Client:
    User.objects.create_superuser("root", password=PASSWORD)
    client = Client()
    assert client.login(username="root", password=PASSWORD)
    return client


async def test_logout_closes_that_sessions_sockets_and_no_other(
    owner: User, company: Company
) -> None:
    leaving = AsyncClient()
    assert await leaving.alogin(username=owner.username, password=PASSWORD)
    staying = await sync_to_async(logged_in)(owner)
    leaving_socket = await board_socket(leaving, company)
    staying_socket = await board_socket(staying, company)

    response = await leaving.post("/logout/")
    assert response.status_code == 302

    assert await closed(leaving_socket) == SIGNED_OUT
    await still_live(staying_socket, company)
    await staying_socket.disconnect()


async def test_a_password_changed_by_the_user_ends_his_other_sessions_only(
    staff_owner: User, company: Company
) -> None:
    changing = await sync_to_async(logged_in)(staff_owner)
    other = await sync_to_async(logged_in)(staff_owner)
    changing_socket = await board_socket(changing, company)
    other_socket = await board_socket(other, company)
    before = changing.cookies["sessionid"].value

    response = await sync_to_async(changing.post)(
        "/admin/password_change/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302, response.content
    # Django kept the session (update_session_auth_hash) under a new key.
    assert changing.cookies["sessionid"].value != before

    assert await closed(other_socket) == SIGNED_OUT
    await still_live(changing_socket, company)
    # The socket follows its session under the new key: its logout still ends it.
    await sync_to_async(changing.post)("/logout/")
    assert await closed(changing_socket) == SIGNED_OUT


async def test_a_password_changed_by_an_admin_ends_every_session(
    owner: User, company: Company, root: Client
) -> None:
    sockets = [await board_socket(await sync_to_async(logged_in)(owner), company) for _ in "ab"]

    response = await sync_to_async(root.post)(
        f"/admin/auth/user/{owner.pk}/password/",
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"},
    )
    assert response.status_code == 302, response.content

    for socket in sockets:
        assert await closed(socket) == SIGNED_OUT


async def test_a_password_set_in_the_shell_ends_every_session(
    owner: User, company: Company
) -> None:
    sockets = [await board_socket(await sync_to_async(logged_in)(owner), company) for _ in "ab"]

    def set_password() -> None:
        user = User.objects.get(pk=owner.pk)
        user.set_password(NEW_PASSWORD)
        user.save()

    await sync_to_async(set_password)()

    for socket in sockets:
        assert await closed(socket) == SIGNED_OUT


async def test_deactivation_ends_every_session(owner: User, company: Company) -> None:
    sockets = [await board_socket(await sync_to_async(logged_in)(owner), company) for _ in "ab"]

    def deactivate() -> None:
        user = User.objects.get(pk=owner.pk)
        user.is_active = False
        user.save()

    await sync_to_async(deactivate)()

    for socket in sockets:
        assert await closed(socket) == SIGNED_OUT


async def test_sign_out_everywhere_ends_every_session_of_that_user(
    owner: User, member: User, company: Company, root: Client
) -> None:
    owners = [await sync_to_async(logged_in)(owner) for _ in "ab"]
    sockets = [await board_socket(client, company) for client in owners]
    bystander = await board_socket(await sync_to_async(logged_in)(member), company)

    response = await sync_to_async(root.post)(
        "/admin/auth/user/", {"action": "sign_out_everywhere", "_selected_action": [owner.pk]}
    )
    assert response.status_code == 302, response.content

    for socket in sockets:
        assert await closed(socket) == SIGNED_OUT
    # The sessions are gone: the browsers are at the login page too.
    for client in owners:
        page = await sync_to_async(client.get)(f"/t/{company.tenant.account}/")
        assert page.status_code == 302 and page["Location"].startswith("/login/")
    assert await bystander.receive_nothing(timeout=0.3)
    await bystander.disconnect()


async def test_a_socket_closes_when_its_session_expires(owner: User, company: Company) -> None:
    client = await sync_to_async(logged_in)(owner)
    expires = timezone.now() + timedelta(seconds=1)

    def expire_soon() -> None:
        session_model().objects.filter(session_key=client.cookies["sessionid"].value).update(
            expire_date=expires
        )

    await sync_to_async(expire_soon)()
    socket = await board_socket(client, company)

    assert await closed(socket, within=2.0) == SIGNED_OUT


async def test_a_socket_of_an_extended_session_stays_open(owner: User, company: Company) -> None:
    client = await sync_to_async(logged_in)(owner)
    key = client.cookies["sessionid"].value
    rows = session_model().objects.filter(session_key=key)

    await sync_to_async(rows.update)(expire_date=timezone.now() + timedelta(seconds=1))
    socket = await board_socket(client, company)
    # Saved again meanwhile (as a request that changes it does): the socket checks at its
    # old expiry, finds the new one and waits for that.
    await sync_to_async(rows.update)(expire_date=timezone.now() + timedelta(hours=1))

    assert await socket.receive_nothing(timeout=1.5)
    await still_live(socket, company)
    await socket.disconnect()


async def test_logging_in_as_someone_else_ends_the_previous_login(
    owner: User, member: User, company: Company
) -> None:
    browser = await sync_to_async(logged_in)(owner)
    socket = await board_socket(browser, company)

    # Django's login flushes the session of the other user (no logout signal is sent).
    response = await sync_to_async(browser.post)(
        "/login/", {"username": member.username, "password": PASSWORD}
    )
    assert response.status_code == 302

    assert await closed(socket) == SIGNED_OUT


async def test_logging_in_again_as_the_same_user_keeps_the_sessions_sockets(
    owner: User, company: Company
) -> None:
    browser = await sync_to_async(logged_in)(owner)
    socket = await board_socket(browser, company)
    before = browser.cookies["sessionid"].value

    response = await sync_to_async(browser.post)(
        "/login/", {"username": owner.username, "password": PASSWORD}
    )
    assert response.status_code == 302
    assert browser.cookies["sessionid"].value == before  # Django keeps the session

    await still_live(socket, company)
    await sync_to_async(browser.post)("/logout/")
    assert await closed(socket) == SIGNED_OUT
