"""Bulk UPDATE of model rows by primary key, for the ingest worker's hot path.

Django's ``QuerySet.bulk_update`` builds one ``CASE WHEN pk=… THEN …`` expression per row and
field and resolves each through the query compiler: for a batch of a few hundred extensions
that was most of the worker's CPU (bench/README.md). Here the statement is one plain
``UPDATE … SET a=%s, b=%s WHERE pk=%s`` run with ``executemany``: sqlite3 loops in C and
psycopg 3 pipelines the rows, and the values still go through each field's own
``get_db_prep_save`` (time zones, encrypted fields and so on behave as with ``save()``).

No signals are sent and ``auto_now`` fields are not touched, as with ``bulk_update``.
"""

from collections.abc import Sequence
from functools import cache

from django.db import connections, router
from django.db.models import Field, Model


def update_rows(objs: Sequence[Model], fields: Sequence[str]) -> None:
    """Write ``fields`` of every object in ``objs`` (all of one model, all saved before)."""
    if not objs:
        return
    model = type(objs[0])
    alias = router.db_for_write(model)
    connection = connections[alias]
    statement, model_fields = _statement(model, tuple(fields), alias)
    pk_field = model._meta.pk
    assert pk_field is not None
    rows = [
        [field.get_db_prep_save(getattr(obj, field.attname), connection) for field in model_fields]
        + [pk_field.get_db_prep_save(obj.pk, connection)]
        for obj in objs
    ]
    with connection.cursor() as cursor:
        cursor.executemany(statement, rows)


@cache
def _statement(model: type[Model], fields: tuple[str, ...], alias: str) -> tuple[str, list[Field]]:
    quote = connections[alias].ops.quote_name
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
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in model_fields)
    # Only quoted names of the model go into the text; every value is a parameter.
    statement = (
        f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {quote(meta.pk.column)} = %s"  # noqa: S608
    )
    return statement, model_fields
