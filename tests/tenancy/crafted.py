"""Rows the database refuses since the tenant-integrity migrations, stored anyway for tests
of the defences behind it (the board's visibility rule, the admin's scoping), as a script
could have stored them before those migrations."""

import importlib
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections

from ctiboard.tenancy import integrity

MIGRATIONS = (
    "ctiboard.tenancy.migrations.0009_tenant_integrity",
    "ctiboard.webhooks.migrations.0003_tenant_integrity",
    "ctiboard.calls.migrations.0003_tenant_integrity",
)
RULES = [rule for name in MIGRATIONS for rule in importlib.import_module(name).RULES]


@contextmanager
def unchecked(alias: str = "default") -> Iterator[None]:
    """The triggers dropped for the block, installed again after it: what the block stored
    stays, as rows stored before the migrations did."""
    connection = connections[alias]
    integrity.drop(connection, RULES)
    try:
        yield
    finally:
        integrity.install(connection, RULES)
