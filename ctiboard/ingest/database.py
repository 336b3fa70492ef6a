"""The worker's database thread: ORM code of the ingest runs there, one call after the other."""

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from asgiref.sync import sync_to_async
from django.db import connections

_R = TypeVar("_R")

# The worker's database work runs in one thread of its own that keeps its connection open.
# Django's default (CONN_MAX_AGE=0) suits the web's per-request threads, but here it opened a
# new connection for every batch, and under light load a batch is one event: connecting cost
# more than storing. Batches are written one after the other, in order, whatever the tenant.
_DATABASE_THREAD = ThreadPoolExecutor(1, thread_name_prefix="ingest-db")


async def in_database_thread(function: Callable[..., _R], *args: object, **kwargs: object) -> _R:
    """Run ORM code in the worker's database thread. Through asgiref, so that what it sends
    to the channel layer after a commit goes out on this event loop."""
    return await sync_to_async(
        functools.partial(_keeping_the_connection, function, *args, **kwargs),
        thread_sensitive=False,
        executor=_DATABASE_THREAD,
    )()


def _keeping_the_connection(function: Callable[..., _R], *args: object, **kwargs: object) -> _R:
    try:
        return function(*args, **kwargs)
    finally:
        # Django's hygiene minus the age limit: after a database error the connection goes
        # (SQLite's cannot even tell whether it still works); the next call opens a new one.
        for connection in connections.all(initialized_only=True):
            if connection.errors_occurred and not connection.in_atomic_block:
                connection.close()
