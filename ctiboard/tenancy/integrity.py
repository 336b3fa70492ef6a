"""Tenant integrity in the database: no row links two tenants, whatever wrote it.

Django 5.2 has no composite foreign keys, and ``m2m_changed``/``pre_save`` checks miss raw
through-model ``bulk_create``, ``QuerySet.update`` and SQL. So the migrations install triggers,
one set per backend (SQLite, PostgreSQL), from the descriptions below:

- a ``Link``: a row of ``table`` whose two ends (two foreign keys, or its own ``tenant_id`` and
  a foreign key) must belong to one tenant, checked on every INSERT and UPDATE of that row;
- an ``Owned`` table: rows others link to never change tenant, so a link checked when written
  stays right (and no check races a concurrent move of its other end).

A violation raises ``django.db.IntegrityError``. On SQLite, a migration that makes Django
rebuild a table named here or in a trigger's body (most ``AlterField`` and constraint changes)
fails with "error in trigger …": drop the triggers first and install them again after it
(``drop``/``install`` with the same descriptions). docs/architecture.md, "Tenant integrity".

Table and column names in the SQL come from the migrations' literal descriptions, never input.
"""

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import NotSupportedError, migrations

logger = logging.getLogger(__name__)

# Both start with this, for people reading logs and tests matching errors.
PREFIX = "tenant integrity: "


@dataclass(frozen=True)
class End:
    """One end of a link: ``column`` of the linking row, a foreign key to ``table`` (whose
    ``tenant_id`` counts), or with no table the row's own tenant id."""

    column: str
    table: str | None = None

    def tenant(self, row: str) -> str:
        if self.table is None:
            return f"{row}.{self.column}"
        return f"(SELECT tenant_id FROM {self.table} WHERE id = {row}.{self.column})"  # noqa: S608


@dataclass(frozen=True)
class Link:
    table: str
    left: End
    right: End
    # The clean-up before the triggers: clear ``right.column`` (a nullable foreign key) instead
    # of deleting the row.
    clear: bool = False

    @property
    def name(self) -> str:
        return f"{self.table}_{self.right.column}_tenant"

    def differ(self, row: str) -> str:
        # NULL (no foreign key, or a missing row that the foreign key itself refuses) passes.
        return f"{self.left.tenant(row)} <> {self.right.tenant(row)}"

    @property
    def message(self) -> str:
        columns = f"{self.left.column}/{self.right.column}"
        return f"{PREFIX}{self.table}.{columns} would link two tenants"


@dataclass(frozen=True)
class Owned:
    table: str

    @property
    def name(self) -> str:
        return f"{self.table}_tenant_fixed"

    @property
    def message(self) -> str:
        return f"{PREFIX}rows of {self.table} never change tenant"


Rule = Link | Owned


def _vendor(connection: Any) -> str:
    vendor: str = connection.vendor
    if vendor not in ("sqlite", "postgresql"):
        raise NotSupportedError(
            f"tenant integrity triggers exist for SQLite and PostgreSQL only, not {vendor}"
        )
    return vendor


def _sqlite_create(rule: Rule) -> list[str]:
    if isinstance(rule, Owned):
        return [
            f"CREATE TRIGGER {rule.name} BEFORE UPDATE OF tenant_id ON {rule.table} FOR EACH ROW "
            f"WHEN NEW.tenant_id <> OLD.tenant_id BEGIN SELECT RAISE(ABORT, '{rule.message}'); END"
        ]
    return [
        f"CREATE TRIGGER {rule.name}_{event.lower()} BEFORE {event} ON {rule.table} FOR EACH ROW "
        f"WHEN {rule.differ('NEW')} BEGIN SELECT RAISE(ABORT, '{rule.message}'); END"
        for event in ("INSERT", "UPDATE")
    ]


def _sqlite_drop(rule: Rule) -> list[str]:
    if isinstance(rule, Owned):
        return [f"DROP TRIGGER IF EXISTS {rule.name}"]
    return [f"DROP TRIGGER IF EXISTS {rule.name}_{event}" for event in ("insert", "update")]


def _postgresql_create(rule: Rule) -> list[str]:
    # SQLSTATE 23514 (check_violation): psycopg and Django raise IntegrityError for it.
    raise_ = f"RAISE EXCEPTION '{rule.message}' USING ERRCODE = 'check_violation';"
    if isinstance(rule, Owned):
        body = raise_
        trigger = (
            f"BEFORE UPDATE OF tenant_id ON {rule.table} FOR EACH ROW "
            "WHEN (NEW.tenant_id IS DISTINCT FROM OLD.tenant_id)"
        )
    else:
        body = f"IF {rule.differ('NEW')} THEN {raise_} END IF;"
        trigger = f"BEFORE INSERT OR UPDATE ON {rule.table} FOR EACH ROW"
    return [
        f"CREATE FUNCTION {rule.name}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN {body} RETURN NEW; END $$",
        f"CREATE TRIGGER {rule.name} {trigger} EXECUTE FUNCTION {rule.name}()",
    ]


def _postgresql_drop(rule: Rule) -> list[str]:
    return [f"DROP FUNCTION IF EXISTS {rule.name}() CASCADE"]


def install(connection: Any, rules: Iterable[Rule]) -> None:
    create = _sqlite_create if _vendor(connection) == "sqlite" else _postgresql_create
    with connection.cursor() as cursor:
        for rule in rules:
            for sql in create(rule):
                cursor.execute(sql)


def drop(connection: Any, rules: Iterable[Rule]) -> None:
    remove = _sqlite_drop if _vendor(connection) == "sqlite" else _postgresql_drop
    with connection.cursor() as cursor:
        for rule in rules:
            for sql in remove(rule):
                cursor.execute(sql)


def remove_cross_tenant_rows(connection: Any, links: Iterable[Link]) -> int:
    """Delete (or clear) every row that links two tenants, logging each; how many there were.

    Runs before ``install`` in the same migration: the triggers would refuse nothing already
    stored, and such a row shows one tenant's names to another."""
    found = 0
    with connection.cursor() as cursor:
        for link in links:
            left, right = link.left, link.right
            cursor.execute(
                f"SELECT id, {left.column}, {left.tenant('t')}, {right.column}, "  # noqa: S608
                f"{right.tenant('t')} FROM {link.table} t WHERE {link.differ('t')} ORDER BY id"
            )
            rows = cursor.fetchall()
            for pk, left_id, left_tenant, right_id, right_tenant in rows:
                logger.warning(
                    PREFIX + "%s %s row %s: %s=%s (tenant %s), %s=%s (tenant %s)",
                    "clearing" if link.clear else "deleting",
                    link.table,
                    pk,
                    left.column,
                    left_id,
                    left_tenant,
                    right.column,
                    right_id,
                    right_tenant,
                )
            ids = [row[0] for row in rows]
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ", ".join(["%s"] * len(chunk))
                if link.clear:
                    sql = f"UPDATE {link.table} SET {right.column} = NULL WHERE id IN ({marks})"  # noqa: S608
                else:
                    sql = f"DELETE FROM {link.table} WHERE id IN ({marks})"  # noqa: S608
                cursor.execute(sql, chunk)
            found += len(rows)
    return found


def operations(rules: Sequence[Rule]) -> list[migrations.RunPython]:
    """A migration's operations: remove the stored cross-tenant rows, then install the
    triggers. Reversed, the triggers go and the removed rows stay removed."""
    links = [rule for rule in rules if isinstance(rule, Link)]

    def clean_up(apps: Any, schema_editor: Any) -> None:
        remove_cross_tenant_rows(schema_editor.connection, links)

    return [
        migrations.RunPython(
            clean_up,
            migrations.RunPython.noop,
        ),
        migrations.RunPython(
            lambda apps, schema_editor: install(schema_editor.connection, rules),
            lambda apps, schema_editor: drop(schema_editor.connection, rules),
        ),
    ]
