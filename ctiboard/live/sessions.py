"""What a board socket knows of the login session it was opened with, and how it checks it.

A socket keeps its session's key in memory only; the messages that end sessions name them by
``digest`` (keyed with SECRET_KEY), so no session key travels through the channel layer in
clear. A session that lives on under a new key (``cycle_key``, e.g. in the password change
that kept it) reaches its sockets ``seal``-ed.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import salted_hmac

from ctiboard.lib import secrets
from ctiboard.lib.sessions import session_model, session_store

_SALT = "ctiboard.live.sessions"


def digest(session_key: str) -> str:
    return salted_hmac(_SALT, session_key, algorithm="sha256").hexdigest()


def seal(session_key: str) -> str:
    return secrets.encrypt(session_key)


def unseal(token: str) -> str:
    return secrets.decrypt(token)


@dataclass(frozen=True)
class Login:
    user: Any
    expires: datetime


def session_login(session_key: str) -> Login | None:
    """The session's user and when it ends, if it is still a valid login; else None.

    Valid as Django's own ``get_user`` judges a request with this session: it exists and has
    not expired, its user is active and its auth hash matches the user's password now."""
    request = HttpRequest()
    request.session = session_store(session_key)
    user = get_user(request)
    if not user.is_authenticated:
        return None
    expires: datetime | None = (
        session_model()
        ._default_manager.filter(session_key=session_key, expire_date__gt=timezone.now())
        .values_list("expire_date", flat=True)
        .first()
    )
    return Login(user, expires) if expires is not None else None
