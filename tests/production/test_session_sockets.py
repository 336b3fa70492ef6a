"""A logout on one Daphne web process closes that session's board socket on another within a
second (the message crosses Redis), and leaves the same user's other session alone."""

import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import unique_account

from .conftest import Stack, seed
from .support import BoardSocket

pytestmark = [pytest.mark.production, pytest.mark.timeout(120)]

PASSWORD = "correct horse battery staple"
USERNAME = "session-user"


def log_out(url: str, session: str) -> None:
    with httpx.Client(base_url=url, timeout=30, cookies={"sessionid": session}) as client:
        client.get("/login/").raise_for_status()
        response = client.post(
            "/logout/", data={"csrfmiddlewaretoken": client.cookies["csrftoken"]}
        )
        assert response.status_code == 302, response.text


def close_code_within(socket: BoardSocket, seconds: float) -> int | None:
    """The close code the server sent within ``seconds``; fails if it stayed open."""
    deadline = time.monotonic() + seconds
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                socket.ws.recv(timeout=remaining)
            except TimeoutError:
                break
    except ConnectionClosed as closed:
        return closed.rcvd.code if closed.rcvd else None
    raise AssertionError(f"still open after {seconds} s")


def still_open_after(socket: BoardSocket, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            socket.ws.recv(timeout=remaining)
        except TimeoutError:
            return
        except ConnectionClosed as closed:
            raise AssertionError(f"closed with {closed.rcvd}") from None


def test_a_logout_closes_that_sessions_socket_on_every_web_process(stack: Stack) -> None:
    account = unique_account()
    seed(
        stack,
        {
            "username": USERNAME,
            "password": PASSWORD,
            "base_url": "http://127.0.0.1:9",
            "tenants": {account: [f"{account}/u", "p"]},
        },
    )
    web1, web2 = stack.web("web-sessions-1"), stack.web("web-sessions-2")
    leaving, staying = web1.login(USERNAME, PASSWORD), web1.login(USERNAME, PASSWORD)
    leaving_socket = BoardSocket(web2, account, leaving)
    staying_socket = BoardSocket(web2, account, staying)
    for socket in (leaving_socket, staying_socket):
        assert "pbx-status" in str(socket.ws.recv(timeout=10))  # its grid: it is in

    log_out(web1.url, leaving)

    assert close_code_within(leaving_socket, 1.0) == 4403, stack.dump()
    still_open_after(staying_socket, 1.0)
    # ... and its own logout ends it, from the other process too.
    log_out(web2.url, staying)
    assert close_code_within(staying_socket, 1.0) == 4403, stack.dump()
