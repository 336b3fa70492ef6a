"""The ingest worker's database thread keeps its connection, and drops a broken one."""

import pytest
from django.db import DatabaseError, connection

from ctiboard.ingest.database import in_database_thread as _db
from ctiboard.tenancy.models import Tenant

pytestmark = pytest.mark.django_db(transaction=True)


def connection_in_use() -> object:
    Tenant.objects.count()
    return connection.connection


def break_the_connection() -> None:
    Tenant.objects.count()
    connection.connection.close()  # as a database restart would
    Tenant.objects.count()


async def test_batches_share_one_connection() -> None:
    first = await _db(connection_in_use)
    assert await _db(connection_in_use) is first


async def test_a_broken_connection_is_replaced_for_the_next_batch() -> None:
    before = await _db(connection_in_use)
    with pytest.raises(DatabaseError):
        await _db(break_the_connection)
    after = await _db(connection_in_use)
    assert after is not before
    assert await _db(Tenant.objects.count) == 0
