"""Bulk UPDATE of model rows by primary key, for the ingest worker's hot path.

Django's ``QuerySet.bulk_update`` builds one ``CASE WHEN pk=… THEN …`` expression per row and
field and resolves each through the query compiler: for a batch of a few hundred extensions
that was most of the worker's CPU (bench/README.md). Here the values still go through each
field's own ``get_db_prep_save`` (time zones, encrypted fields and so on behave as with
``save()``), and then:

- on PostgreSQL, when every column is of a plain type, one statement for the whole batch:
  ``UPDATE t SET a = v.a, … FROM unnest(%s::type[], …) AS v(a, …, pk) WHERE t.pk = v.pk``,
  one array parameter per column. Pipelining one UPDATE per row (psycopg's ``executemany``)
  cost a round of query building and a server statement per row;
- elsewhere ``UPDATE … SET a=%s, b=%s WHERE pk=%s`` with ``executemany``: sqlite3 loops in C.

No signals are sent and ``auto_now`` fields are not touched, as with ``bulk_update``.
"""

import re
from collections.abc import Sequence
from functools import cache
from typing import Any

from django.db import connections, models, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model

# Fields whose prepared values psycopg turns into an array element of the column's own type.
# Exact classes only: a subclass may prepare values of another kind (encrypted bytes, JSON
# wrappers, lists that unnest would flatten), so it takes the statement per row.
_ARRAY_SAFE: frozenset[type[Field]] = frozenset(
    {
        models.AutoField,
        models.BigAutoField,
        models.SmallAutoField,
        models.BigIntegerField,
        models.BooleanField,
        models.CharField,
        models.DateField,
        models.DateTimeField,
        models.FloatField,
        models.ForeignKey,
        models.IntegerField,
        models.PositiveBigIntegerField,
        models.PositiveIntegerField,
        models.PositiveSmallIntegerField,
        models.SmallIntegerField,
        models.TextField,
        models.UUIDField,
    }
)
# "varchar(40)" -> "varchar": a cast to varchar(40)[] would silently cut longer values, where
# the assignment to the column refuses them as an UPDATE per row does.
_TYPE_MODIFIER = re.compile(r"\([^)]*\)")


def update_rows(objs: Sequence[Model], fields: Sequence[str]) -> None:
    """Write ``fields`` of every object in ``objs`` (all of one model, all saved before)."""
    if not objs:
        return
    model = type(objs[0])
    alias = router.db_for_write(model)
    connection = connections[alias]
    statement, model_fields, batch_statement = _statements(model, tuple(fields), alias)
    pk_field = model._meta.pk
    assert pk_field is not None
    if batch_statement is None:
        rows = [
            [
                field.get_db_prep_save(getattr(obj, field.attname), connection)
                for field in model_fields
            ]
            + [pk_field.get_db_prep_save(obj.pk, connection)]
            for obj in objs
        ]
        with connection.cursor() as cursor:
            cursor.executemany(statement, rows)
        return
    # One row per key, the last one given: as the UPDATEs in order would leave it (a join
    # with several matching rows would update the row from any one of them).
    latest = list({obj.pk: obj for obj in objs}.values())
    columns: list[list[Any]] = [
        _column(latest, field, connection) for field in [*model_fields, pk_field]
    ]
    with connection.cursor() as cursor:
        cursor.execute(batch_statement, columns)


def _column(objs: list[Model], field: Field, connection: BaseDatabaseWrapper) -> list[Any]:
    prep, attname = field.get_db_prep_save, field.attname
    return [prep(getattr(obj, attname), connection) for obj in objs]


@cache
def _statements(
    model: type[Model], fields: tuple[str, ...], alias: str
) -> tuple[str, list[Field], str | None]:
    """The UPDATE per row, the fields in its order and, where it applies, the one per batch."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    meta = model._meta
    model_fields: list[Field] = []
    for name in fields:
        field = meta.get_field(name)
        if (
            not isinstance(field, Field)
            or not field.concrete
            or field.primary_key
            or field.many_to_many
        ):
            raise ValueError(f"{meta.label}.{name} cannot be bulk-updated")
        model_fields.append(field)
    assert meta.pk is not None
    table, pk = quote(meta.db_table), quote(meta.pk.column)
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in model_fields)
    # Only quoted names and types of the model go into the text; every value is a parameter.
    statement = f"UPDATE {table} SET {assignments} WHERE {pk} = %s"  # noqa: S608
    return statement, model_fields, _batch_statement(connection, meta.pk, model_fields, table)


def _batch_statement(
    connection: BaseDatabaseWrapper, pk_field: Field, model_fields: list[Field], table: str
) -> str | None:
    if connection.vendor != "postgresql":
        return None
    quote = connection.ops.quote_name
    every = [*model_fields, pk_field]
    types = [field.db_type(connection) for field in every]
    if any(type(field) not in _ARRAY_SAFE for field in every) or None in types:
        return None
    arrays = ", ".join(
        f"%s::{_TYPE_MODIFIER.sub('', db_type)}[]" for db_type in types if db_type is not None
    )
    names = ", ".join(quote(field.column) for field in every)
    assignments = ", ".join(
        f"{quote(field.column)} = batch_rows.{quote(field.column)}" for field in model_fields
    )
    pk = quote(pk_field.column)
    return (
        f"UPDATE {table} SET {assignments} FROM unnest({arrays}) AS batch_rows({names}) "  # noqa: S608
        f"WHERE {table}.{pk} = batch_rows.{pk}"
    )
