"""Django's login sessions by the configured engine, for code that is not a request."""

from collections.abc import Iterable
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.base import SessionBase
from django.utils import timezone


def session_store(session_key: str | None = None) -> SessionBase:
    """A store of the configured engine, as Django's SessionMiddleware makes one."""
    store: SessionBase = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    return store


def session_model() -> Any:
    """The engine's database model: ctiboard keeps Django's default (database) sessions, whose
    rows say when a session expires and whose it is. An engine without a table (cache, files,
    signed cookies) fails here loudly instead of leaving sessions unchecked."""
    store = import_module(settings.SESSION_ENGINE).SessionStore
    get_model_class = getattr(store, "get_model_class", None)
    if get_model_class is None:
        raise RuntimeError(
            f"SESSION_ENGINE={settings.SESSION_ENGINE!r} keeps no session table: ctiboard needs"
            " a database-backed engine (db or cached_db)"
        )
    return get_model_class()


def end_sessions_of(user_ids: Iterable[int]) -> int:
    """Delete every unexpired session of these users (through the engine, so a cached copy
    goes too); returns how many. Sessions name their user only inside their data."""
    wanted = {str(user_id) for user_id in user_ids}
    store = session_store()
    rows = session_model()._default_manager.filter(expire_date__gt=timezone.now())
    ended = 0
    for key, data in rows.values_list("session_key", "session_data").iterator():
        if str(store.decode(data).get(SESSION_KEY)) in wanted:
            store.delete(key)
            ended += 1
    return ended
