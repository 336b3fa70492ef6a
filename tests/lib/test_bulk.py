"""update_rows: the ingest worker's one-statement bulk UPDATE.

The default test settings use SQLite; the ``test_postgresql_…`` tests run against a database of
their own on the PostgreSQL of 127.0.0.1 (created and dropped here), or are skipped.
"""

import os
import secrets
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from django.db import DatabaseError, connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone as django_timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_django import DjangoDbBlocker

from bench.procs import postgres_admin
from ctiboard.lib import bulk
from ctiboard.lib.bulk import update_rows
from ctiboard.tenancy.models import Extension, ExtensionGroup, Tenant
from tests.conftest import Company

WHEN = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)
PG_ALIAS = "bulk_postgresql"


@pytest.mark.django_db
def test_writes_the_named_fields_of_every_row_in_one_statement(company: Company) -> None:
    extensions = list(Extension.objects.filter(tenant=company.tenant).order_by("number")[:3])
    for i, extension in enumerate(extensions):
        extension.line = "ringing"
        extension.line_since = WHEN
        extension.call_since = None
        extension.seq = 100 + i
        extension.name = "not written"
    with CaptureQueriesContext(connection) as queries:
        update_rows(extensions, ["line", "line_since", "call_since", "seq"])
    assert len(queries.captured_queries) == 1
    stored = Extension.objects.filter(pk__in=[e.pk for e in extensions]).order_by("number")
    assert [(e.line, e.line_since, e.call_since, e.seq) for e in stored] == [
        ("ringing", WHEN, None, 100),
        ("ringing", WHEN, None, 101),
        ("ringing", WHEN, None, 102),
    ]
    assert "not written" not in {e.name for e in stored}


@pytest.mark.django_db
def test_nothing_to_write_sends_nothing() -> None:
    with CaptureQueriesContext(connection) as queries:
        update_rows([], ["line"])
    assert queries.captured_queries == []


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["id", "extensions", "nonexistent"])
def test_refuses_what_is_not_a_plain_column(company: Company, name: str) -> None:
    group = ExtensionGroup.objects.create(tenant=company.tenant, name="Sales")
    with pytest.raises(Exception, match=r"cannot be bulk-updated|has no field"):
        update_rows([group], [name])


# --- PostgreSQL: one UPDATE … FROM ROWS FROM (json arrays) per batch ------------------------


@pytest.fixture(scope="module")
def postgresql(django_db_blocker: DjangoDbBlocker) -> Iterator[str]:
    """A database alias on a fresh PostgreSQL database holding the tenant and extension
    tables, outside pytest-django's test databases (those are SQLite here)."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    admin_dsn, why = postgres_admin()
    if admin_dsn is None:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is unreachable ({why})")
    name = f"ctiboard_bulktest_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    settings = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "USER": conninfo_to_dict(admin_dsn)["user"],
        "HOST": "127.0.0.1",
        "PORT": "5432",
    }
    try:
        configured = connections.configure_settings({**connections.settings, PG_ALIAS: settings})
        connections.settings[PG_ALIAS] = configured[PG_ALIAS]
        with django_db_blocker.unblock():
            with connections[PG_ALIAS].schema_editor() as editor:
                editor.create_model(Tenant)
                editor.create_model(Extension)
            try:
                yield PG_ALIAS
            finally:
                connections[PG_ALIAS].close()
    finally:
        if PG_ALIAS in connections.settings:
            del connections[PG_ALIAS]
            del connections.settings[PG_ALIAS]
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def on_postgresql(
    postgresql: str, django_db_blocker: DjangoDbBlocker, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Tenant]:
    """A tenant of its own with six extensions on the PostgreSQL database, where update_rows
    writes for the test."""
    monkeypatch.setattr(bulk.router, "db_for_write", lambda model, **hints: postgresql)
    with django_db_blocker.unblock():
        tenant = Tenant.objects.using(postgresql).create(
            name="Company", account=f"K{secrets.randbelow(10**6)}", api_username="u"
        )
        for i in range(6):
            Extension.objects.using(postgresql).create(
                tenant=tenant, number=str(100 + i), line="idle", presence="available"
            )
        yield tenant  # dropped with the database (a delete would cascade to absent tables)


def _stored(alias: str, tenant: Tenant, *fields: str) -> list[tuple[Any, ...]]:
    rows = Extension.objects.using(alias).filter(tenant=tenant).order_by("number")
    return list(rows.values_list("number", *fields))


def test_postgresql_writes_a_batch_in_one_statement_as_the_rows_would(
    on_postgresql: Tenant, postgresql: str, django_db_blocker: DjangoDbBlocker
) -> None:
    pg = connections[postgresql]
    with django_db_blocker.unblock():
        extensions = list(Extension.objects.using(postgresql).filter(tenant=on_postgresql))
        extensions.sort(key=lambda e: e.number)
        first, second, third, fourth = extensions[:4]
        first.line, first.line_since, first.seq = "ringing", WHEN, 2**40
        first.call_partner, first.call_since = "+49 30 123'456\"{,}", None
        # Another offset: the same instant.
        second.line, second.line_since = "in-use", WHEN.astimezone(timezone(timedelta(hours=-5)))
        second.presence, second.presence_since = "", None
        third.line, third.call_since = "offline", WHEN
        # The same row twice: the later one is what stays, as with an UPDATE per row.
        fourth.line = "stale"
        later = Extension.objects.using(postgresql).get(pk=fourth.pk)
        later.line, later.seq = "idle-again", 7
        fields = ["line", "presence", "line_since", "presence_since", "call_partner"]
        fields += ["call_since", "seq"]
        with CaptureQueriesContext(pg) as queries:
            update_rows([first, second, third, fourth, later], fields)
        assert len(queries.captured_queries) == 1
        assert "json_array_elements_text" in queries.captured_queries[0]["sql"]
        assert _stored(postgresql, on_postgresql, *fields) == [
            ("100", "ringing", "available", WHEN, None, "+49 30 123'456\"{,}", None, 2**40),
            ("101", "in-use", "", WHEN, None, "", None, 0),
            ("102", "offline", "available", None, None, "", WHEN, 0),
            ("103", "idle-again", "available", None, None, "", None, 7),
            ("104", "idle", "available", None, None, "", None, 0),
            ("105", "idle", "available", None, None, "", None, 0),
        ]


def test_postgresql_keeps_the_column_limits_and_the_time_zone_handling(
    on_postgresql: Tenant, postgresql: str, django_db_blocker: DjangoDbBlocker
) -> None:
    with django_db_blocker.unblock():
        extension = Extension.objects.using(postgresql).filter(tenant=on_postgresql).first()
        assert extension is not None
        # A naive time is taken as the current time zone's, with Django's warning, as in save().
        extension.line_since = WHEN.replace(tzinfo=None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            update_rows([extension], ["line_since"])
        assert any("naive datetime" in str(w.message) for w in caught)
        stored = Extension.objects.using(postgresql).get(pk=extension.pk).line_since
        assert stored == django_timezone.make_aware(WHEN.replace(tzinfo=None))
        # Longer than the column: refused, not cut to size by the array's type.
        extension.line = "x" * 41
        with pytest.raises(DatabaseError, match="too long"):
            update_rows([extension], ["line"])


def test_postgresql_fields_of_their_own_kind_are_written_row_by_row(
    on_postgresql: Tenant, postgresql: str, django_db_blocker: DjangoDbBlocker
) -> None:
    pg = connections[postgresql]
    with django_db_blocker.unblock():
        on_postgresql.api_password, on_postgresql.name = "new secret", "Renamed"
        with CaptureQueriesContext(pg) as queries:
            update_rows([on_postgresql], ["api_password", "name"])
        assert "json_array_elements_text" not in queries.captured_queries[0]["sql"]
        stored = Tenant.objects.using(postgresql).get(pk=on_postgresql.pk)
        assert (stored.api_password, stored.name) == ("new secret", "Renamed")
        with pg.cursor() as cursor:
            cursor.execute("SELECT api_password FROM pbx_tenant WHERE id = %s", [stored.pk])
            assert "new secret" not in cursor.fetchone()[0]


_LIVE_FIELDS = ["line", "presence", "line_since", "call_partner", "call_since", "seq"]
_INSTANTS = st.none() | st.datetimes(
    min_value=datetime(2, 1, 1),
    max_value=datetime(9998, 12, 31),
    timezones=st.none()
    | st.timezones()
    | st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23)).map(timezone),
)
_TEXTS = st.text(max_size=45) | st.sampled_from(["", "idle", "in-use", "+49 30 1234"])


def _written(alias: str, pk: int) -> object:
    try:
        return Extension.objects.using(alias).values_list(*_LIVE_FIELDS).get(pk=pk)
    except Exception as exc:
        return type(exc)


@settings(
    max_examples=150,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    values=st.lists(
        st.tuples(
            _TEXTS,
            _TEXTS,
            _INSTANTS,
            _TEXTS,
            _INSTANTS,
            st.integers(-(2**63), 2**63 - 1) | st.integers(0, 10**6),
        ),
        min_size=2,
        max_size=2,
    )
)
def test_postgresql_batch_writes_what_an_update_per_row_writes(
    on_postgresql: Tenant,
    postgresql: str,
    django_db_blocker: DjangoDbBlocker,
    values: list[tuple[Any, ...]],
) -> None:
    pg = connections[postgresql]
    statement, model_fields, batch = bulk._statements(Extension, tuple(_LIVE_FIELDS), postgresql)
    assert batch is not None
    with django_db_blocker.unblock(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # naive datetimes, made aware by both paths alike
        rows = list(Extension.objects.using(postgresql).filter(tenant=on_postgresql))
        by_batch, by_row = rows[:2], rows[2:4]
        for extensions in (by_batch, by_row):
            for extension, row in zip(extensions, values, strict=True):
                for name, value in zip(_LIVE_FIELDS, row, strict=True):
                    setattr(extension, name, value)
        failures = []
        try:
            update_rows(by_batch, _LIVE_FIELDS)
        except Exception as exc:
            failures.append(exc)
        try:
            bulk._update_each(by_row, statement, model_fields, Extension._meta.pk, pg)
        except Exception as exc:
            failures.append(exc)
        assert len(failures) in (0, 2), failures
        if not failures:
            for mine, theirs in zip(by_batch, by_row, strict=True):
                assert _written(postgresql, mine.pk) == _written(postgresql, theirs.pk)
