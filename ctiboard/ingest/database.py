"""The worker's database thread: ORM code of the ingest runs there, one call after the other."""

import contextlib
import functools
import time
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import psycopg
from asgiref.sync import sync_to_async
from django.db import DatabaseError, InterfaceError, OperationalError, connections
from django.db.backends.base.base import BaseDatabaseWrapper

_R = TypeVar("_R")

# The worker's database work runs in one thread of its own that keeps its connection open.
# Django's default (CONN_MAX_AGE=0) suits the web's per-request threads, but here it opened a
# new connection for every batch, and under light load a batch is one event: connecting cost
# more than storing. Batches are written one after the other, in order, whatever the tenant.
_DATABASE_THREAD = ThreadPoolExecutor(1, thread_name_prefix="ingest-db")

# A kept connection idle this long is checked (one round trip) before it is used again: the
# server may have ended it meanwhile (restart, failover, pg_terminate_backend). Under load
# batches follow each other closely and pay nothing.
IDLE_CHECK_SECONDS = 1.0
_last_used: "weakref.WeakKeyDictionary[BaseDatabaseWrapper, float]" = weakref.WeakKeyDictionary()


async def in_database_thread(function: Callable[..., _R], *args: object, **kwargs: object) -> _R:
    """Run ORM code in the worker's database thread. Through asgiref, so that what it sends
    to the channel layer after a commit goes out on this event loop."""
    return await sync_to_async(
        functools.partial(_keeping_the_connection, function, *args, **kwargs),
        thread_sensitive=False,
        executor=_DATABASE_THREAD,
    )()


def database_unavailable(error: BaseException) -> bool:
    """Whether ``error`` says the database is away (connection lost or refused, pool
    exhausted), not that the statement was wrong: worth retrying the same write later."""
    return isinstance(
        error,
        OperationalError | InterfaceError | psycopg.OperationalError | psycopg.InterfaceError,
    )


def fresh_connections() -> None:
    """Before a unit of work in a thread that keeps its connection (the worker's database
    thread; the lease thread may call it instead of ``close_old_connections``): drop one that
    failed, and check one idle for a while, so that a connection the server ended costs a
    reconnect rather than a failed write. No age limit: keeping it is the point."""
    now = time.monotonic()
    for connection in connections.all(initialized_only=True):
        if connection.connection is None or connection.in_atomic_block:
            continue
        idle = now - _last_used.get(connection, now)
        if connection.errors_occurred or (
            idle >= IDLE_CHECK_SECONDS and not connection.is_usable()
        ):
            discard(connection)


def discard(connection: BaseDatabaseWrapper) -> None:
    """Drop this thread's connection (back to the pool, which throws a broken one away); the
    next query opens or takes another. Never raises: the connection may be gone already."""
    with contextlib.suppress(DatabaseError, psycopg.Error):
        connection.close()


def _keeping_the_connection(function: Callable[..., _R], *args: object, **kwargs: object) -> _R:
    fresh_connections()
    try:
        return function(*args, **kwargs)
    finally:
        # Django's hygiene minus the age limit: after a database error the connection goes
        # (SQLite's cannot even tell whether it still works); the next call opens a new one.
        for connection in connections.all(initialized_only=True):
            if connection.errors_occurred and not connection.in_atomic_block:
                discard(connection)
            _last_used[connection] = time.monotonic()
