"""The tenant admin shows which ingest worker streams each tenant and since when."""

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from ctiboard.ingest.leases import Leases
from ctiboard.tenancy.models import IngestWorker
from tests.conftest import make_company

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_tenant_list_and_page_name_the_serving_worker(admin_client: Any) -> None:
    served = make_company(count=1).tenant
    idle = make_company(count=1).tenant
    leases = Leases("host-a:port9100", ttl=60)
    leases.heartbeat()
    assert leases.acquire(served.pk)

    listing = admin_client.get("/admin/pbx/tenant/").content.decode()
    assert "host-a:port9100 since " in listing
    page = admin_client.get(f"/admin/pbx/tenant/{served.pk}/change/").content.decode()
    assert "host-a:port9100 since " in page
    assert "(no heartbeat)" not in page
    assert "host-a" not in admin_client.get(f"/admin/pbx/tenant/{idle.pk}/change/").content.decode()

    IngestWorker.objects.filter(pk="host-a:port9100").update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    page = admin_client.get(f"/admin/pbx/tenant/{served.pk}/change/").content.decode()
    assert "host-a:port9100 since " in page and "(no heartbeat)" in page
