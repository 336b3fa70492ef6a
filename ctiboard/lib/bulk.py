"""Bulk UPDATE of model rows by primary key, for the ingest worker's hot path.

Django's ``QuerySet.bulk_update`` builds one ``CASE WHEN pk=… THEN …`` expression per row and
field and resolves each through the query compiler: for a batch of a few hundred extensions
that was most of the worker's CPU (bench/README.md). Here:

- on PostgreSQL, when every column is of a plain kind (text, integer, boolean, instant), one
  statement for the whole batch, each column's values as one JSON array
  (``UPDATE t SET a = r.a::type, … FROM ROWS FROM (json_array_elements_text(%s), …) AS r(…)
  WHERE t.pk = r.pk::type``). Pipelining an UPDATE per row (psycopg's ``executemany``) cost a
  query rendering and a server statement per row; arrays as parameters cost psycopg's
  per-element quoting in Python, JSON is encoded in C;
- elsewhere ``UPDATE … SET a=%s, b=%s WHERE pk=%s`` with ``executemany``: sqlite3 loops in C.

The values go through each field's own ``get_db_prep_save`` (time zones, encrypted fields and
so on behave as with ``save()``), except on the PostgreSQL path those of which it is known to
change nothing there: ``str`` for text fields, ``int`` for integer fields, ``bool`` for boolean
fields and datetimes with a fixed-offset ``timezone`` for datetime fields (a naive one is made
aware, with Django's warning, by ``get_db_prep_save``). Instants travel as integer
microseconds since the epoch: exact, and ``isoformat`` was the dearest part of the encoding.

No signals are sent and ``auto_now`` fields are not touched, as with ``bulk_update``.
"""

import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from typing import Any

from django.db import connections, models, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model

# The column kinds of the PostgreSQL path by field class. Exact classes only: a subclass may
# prepare values of another kind (encrypted text, JSON wrappers, lists), so it takes the
# statement per row.
_KINDS: dict[type[Field], str] = {
    models.CharField: "text",
    models.TextField: "text",
    models.BooleanField: "boolean",
    models.AutoField: "integer",
    models.BigAutoField: "integer",
    models.SmallAutoField: "integer",
    models.IntegerField: "integer",
    models.BigIntegerField: "integer",
    models.SmallIntegerField: "integer",
    models.PositiveIntegerField: "integer",
    models.PositiveBigIntegerField: "integer",
    models.PositiveSmallIntegerField: "integer",
    models.DateTimeField: "instant",
}
# "varchar(40)" -> "varchar": a cast to varchar(40) would silently cut longer values, where
# the assignment to the column refuses them as an UPDATE per row does.
_TYPE_MODIFIER = re.compile(r"\([^)]*\)")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class _Unsuitable(Exception):
    """A prepared value the JSON column cannot carry as it is: the batch goes row by row."""


def update_rows(objs: Sequence[Model], fields: Sequence[str]) -> None:
    """Write ``fields`` of every object in ``objs`` (all of one model, all saved before)."""
    if not objs:
        return
    model = type(objs[0])
    alias = router.db_for_write(model)
    connection = connections[alias]
    statement, model_fields, batch = _statements(model, tuple(fields), alias)
    pk_field = model._meta.pk
    assert pk_field is not None
    if batch is None:
        _update_each(objs, statement, model_fields, pk_field, connection)
        return
    batch_statement, batch_kinds = batch
    # One row per key, the last one given: as the UPDATEs in order would leave it (a join
    # with several matching rows would update the row from any one of them).
    latest = list({obj.pk: obj for obj in objs}.values())
    try:
        columns = [
            json.dumps(
                _COLUMN[kind]([getattr(obj, field.attname) for obj in latest], field, connection),
                ensure_ascii=False,
                separators=(",", ":"),
            )
            for field, kind in zip([*model_fields, pk_field], batch_kinds, strict=True)
        ]
    except _Unsuitable:
        _update_each(objs, statement, model_fields, pk_field, connection)
        return
    with connection.cursor() as cursor:
        cursor.execute(batch_statement, columns)


def _update_each(
    objs: Sequence[Model],
    statement: str,
    model_fields: list[Field],
    pk_field: Field,
    connection: BaseDatabaseWrapper,
) -> None:
    rows = [
        [field.get_db_prep_save(getattr(obj, field.attname), connection) for field in model_fields]
        + [pk_field.get_db_prep_save(obj.pk, connection)]
        for obj in objs
    ]
    with connection.cursor() as cursor:
        cursor.executemany(statement, rows)


def _plain(
    kind: type, suits: Callable[[Any], bool]
) -> Callable[[list[Any], Field, BaseDatabaseWrapper], list[Any]]:
    """A column of ``kind`` values, taken as they are; others go through ``get_db_prep_save``
    and must then ``suit`` the column."""

    def prepare(values: list[Any], field: Field, connection: BaseDatabaseWrapper) -> list[Any]:
        for i, value in enumerate(values):
            if value is not None and type(value) is not kind:
                value = values[i] = field.get_db_prep_save(value, connection)
                if value is not None and not suits(value):
                    raise _Unsuitable
        return values

    return prepare


def _instant(values: list[Any], field: Field, connection: BaseDatabaseWrapper) -> list[Any]:
    for i, value in enumerate(values):
        if value is None:
            continue
        if type(value) is not datetime or type(value.tzinfo) is not timezone:
            value = field.get_db_prep_save(value, connection)
            if not isinstance(value, datetime):
                raise _Unsuitable
        if value.tzinfo is not UTC:
            offset = value.utcoffset()
            # PostgreSQL reads no offset finer than a second: such a value fails row by row.
            if offset is None or offset.microseconds:
                raise _Unsuitable
        values[i] = (value - _EPOCH) // _MICROSECOND
    return values


_COLUMN: dict[str, Callable[[list[Any], Field, BaseDatabaseWrapper], list[Any]]] = {
    "text": _plain(str, lambda value: isinstance(value, str)),
    # psycopg's Int8 and the like are int subclasses, encoded as their digits.
    "integer": _plain(int, lambda value: isinstance(value, int) and not isinstance(value, bool)),
    "boolean": _plain(bool, lambda value: isinstance(value, bool)),
    "instant": _instant,
}


@cache
def _statements(
    model: type[Model], fields: tuple[str, ...], alias: str
) -> tuple[str, list[Field], tuple[str, list[str]] | None]:
    """The UPDATE per row, the fields in its order and, where it applies, the UPDATE per batch
    with the kinds of its columns (the fields', then the key's)."""
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


def _kind(field: Field) -> str | None:
    if type(field) is models.ForeignKey:
        field = field.target_field  # whose get_db_prep_save it uses
    return _KINDS.get(type(field))


def _batch_statement(
    connection: BaseDatabaseWrapper, pk_field: Field, model_fields: list[Field], table: str
) -> tuple[str, list[str]] | None:
    if connection.vendor != "postgresql":
        return None
    every = [*model_fields, pk_field]
    kinds = [_kind(field) for field in every]
    types = [field.db_type(connection) for field in every]
    if None in kinds or None in types:
        return None
    quote = connection.ops.quote_name
    names = [quote(field.column) for field in every]
    values = []
    for name, kind, db_type in zip(names, kinds, types, strict=True):
        value = f"batch_rows.{name}"
        if kind == "instant":
            # Integer arithmetic on the server as well: an interval of whole seconds and one of
            # microseconds, each exact, added to the epoch with no time zone involved.
            values.append(
                f"(timestamptz 'epoch' + ({value}::bigint / 1000000) * interval '1 second'"
                f" + ({value}::bigint %% 1000000) * interval '1 microsecond')"
            )
        else:
            values.append(f"{value}::{_TYPE_MODIFIER.sub('', str(db_type))}")
    assignments = ", ".join(
        f"{name} = {value}" for name, value in zip(names[:-1], values[:-1], strict=True)
    )
    sources = ", ".join("json_array_elements_text(%s::json)" for _ in every)
    # ROWS FROM zips the arrays by position: row i of the batch is element i of each.
    return (
        f"UPDATE {table} SET {assignments} "  # noqa: S608
        f"FROM ROWS FROM ({sources}) AS batch_rows({', '.join(names)}) "
        f"WHERE {table}.{names[-1]} = {values[-1]}"
    ), [kind for kind in kinds if kind is not None]
