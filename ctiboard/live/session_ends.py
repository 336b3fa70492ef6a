"""Which board sockets end when a login session ends, decided once the session is saved.

Two things end sessions: a session row deleted (logout's flush, "Sign out everywhere",
clearsessions, a login as someone else) and a new password (every session of the user but,
as with Django's ``update_session_auth_hash``, the one that changed it and was updated).
Inside a request neither can be judged when it happens: ``cycle_key`` deletes the old row of
a session that lives on under a new key, and a password view updates its own session only
after saving the user. So a request collects them (``SessionSocketsMiddleware``, placed
before SessionMiddleware) and sends them after its session is saved; anywhere else (a shell,
a command) they go out when the transaction commits. Deactivation ends every session at once.
"""

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare
from django.utils.decorators import sync_and_async_middleware

from . import publish
from .sessions import digest, seal


@dataclass(frozen=True)
class SessionGone:
    session_key: str
    user_id: int


@dataclass(frozen=True)
class PasswordChanged:
    user_id: int


Event = SessionGone | PasswordChanged
# The events of the request being served (None outside requests).
_collected: ContextVar[list[Event] | None] = ContextVar("ctiboard_session_ends", default=None)


def session_deleted(session_key: str, data: dict[str, Any]) -> None:
    """A session row was deleted; ``data`` is what it held."""
    user_id = data.get(SESSION_KEY)
    if user_id is None or not str(user_id).isdigit():
        return  # nobody was logged in with it: no socket has it
    _note(SessionGone(session_key, int(user_id)))


def password_changed(user_id: int) -> None:
    _note(PasswordChanged(user_id))


def deactivated(user_id: int) -> None:
    publish.sessions_ended(user_id)


def _note(event: Event) -> None:
    def deliver() -> None:
        collected = _collected.get()
        if collected is None:
            _send([event], None)
        else:
            collected.append(event)

    transaction.on_commit(deliver, robust=True)


def _send(events: list[Event], request: HttpRequest | None) -> None:
    """``request``: the one the events happened in, its session saved (None: no request)."""
    before = request.COOKIES.get(settings.SESSION_COOKIE_NAME) if request is not None else None
    session = getattr(request, "session", None)
    after = session.session_key if session is not None else None
    # The user the request's session belongs to now, if any.
    owner = session.get(SESSION_KEY) if session is not None and after else None
    for event in events:
        if not isinstance(event, SessionGone):
            continue
        if (
            event.session_key == before
            and after
            and after != before
            and owner == str(event.user_id)
        ):
            # cycle_key: the same login under a new key; its sockets carry on with it.
            publish.session_replaced(event.user_id, digest(before), seal(after))
        else:
            publish.session_ended(event.user_id, digest(event.session_key))
    for user_id in dict.fromkeys(e.user_id for e in events if isinstance(e, PasswordChanged)):
        keep: list[str] = []
        if session is not None and after and owner == str(user_id):
            user = get_user_model()._default_manager.filter(pk=user_id).first()
            if user is not None and constant_time_compare(
                session.get(HASH_SESSION_KEY, ""), user.get_session_auth_hash()
            ):
                keep = [digest(key) for key in dict.fromkeys((before, after)) if key]
        publish.sessions_ended(user_id, keep=keep)


@sync_and_async_middleware
def SessionSocketsMiddleware(
    get_response: Callable[[HttpRequest], Any],
) -> Callable[[HttpRequest], Any]:
    if iscoroutinefunction(get_response):

        async def middleware_async(request: HttpRequest) -> HttpResponse:
            collected: list[Event] = []
            token = _collected.set(collected)
            try:
                response: HttpResponse = await get_response(request)
            finally:
                _collected.reset(token)
                if collected:
                    await sync_to_async(_send)(collected, request)
            return response

        return middleware_async

    def middleware(request: HttpRequest) -> HttpResponse:
        collected: list[Event] = []
        token = _collected.set(collected)
        try:
            response: HttpResponse = get_response(request)
        finally:
            _collected.reset(token)
            if collected:
                _send(collected, request)
        return response

    return middleware
