"""update_rows: the ingest worker's one-statement bulk UPDATE."""

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ctiboard.lib.bulk import update_rows
from ctiboard.pbx.models import Extension, ExtensionGroup
from tests.conftest import Company

pytestmark = pytest.mark.django_db

WHEN = datetime(2026, 3, 1, 9, 30, 15, 123456, tzinfo=UTC)


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


def test_nothing_to_write_sends_nothing() -> None:
    with CaptureQueriesContext(connection) as queries:
        update_rows([], ["line"])
    assert queries.captured_queries == []


@pytest.mark.parametrize("name", ["id", "extensions", "nonexistent"])
def test_refuses_what_is_not_a_plain_column(company: Company, name: str) -> None:
    group = ExtensionGroup.objects.create(tenant=company.tenant, name="Sales")
    with pytest.raises(Exception, match=r"cannot be bulk-updated|has no field"):
        update_rows([group], [name])
