"""Retention: prune_history deletes what is older than each tenant's number of days."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from ctiboard.calls.models import CallRecord
from ctiboard.webhooks.models import DeliveryStatus, WebhookDelivery
from tests.conftest import Company
from tests.history.support import extension, make_record
from tests.webhooks.support import webhook

pytestmark = pytest.mark.django_db


def delivery(company: Company, uuid: str, status: str, age_days: int) -> None:
    hook = webhook(company.tenant, "https://crm.example/hook")
    WebhookDelivery.objects.create(
        tenant=company.tenant,
        webhook=hook,
        event="ended",
        uuid=uuid,
        extension=extension(company, "100"),
        method="POST",
        url=hook.url,
        status=status,
        created=timezone.now() - timedelta(days=age_days),
    )


@pytest.fixture
def aged(company: Company, other_company: Company) -> None:
    company.tenant.history_days = 30
    company.tenant.save()
    now = timezone.now()
    for days in (29, 31, 400):
        make_record(company, "100", f"a-{days}", ended_at=now - timedelta(days=days))
        make_record(other_company, "100", f"b-{days}", ended_at=now - timedelta(days=days))
    delivery(company, "old-done", DeliveryStatus.DELIVERED, 31)
    delivery(company, "old-failed", DeliveryStatus.FAILED, 31)
    delivery(company, "old-pending", DeliveryStatus.PENDING, 31)  # still to be sent: kept
    delivery(company, "new-done", DeliveryStatus.DELIVERED, 29)


def uuids() -> set[str]:
    return set(CallRecord.objects.values_list("uuid", flat=True))


def test_each_tenant_keeps_its_own_number_of_days(company: Company, aged: None) -> None:
    out = StringIO()
    call_command("prune_history", stdout=out)
    # 30 days for the first tenant, the default 90 for the other.
    assert uuids() == {"a-29", "b-29", "b-31"}
    assert set(WebhookDelivery.objects.values_list("uuid", flat=True)) == {
        "old-pending",
        "new-done",
    }
    assert f"{company.tenant.account}: deleted 2 call records and 2 webhook deliveries" in (
        out.getvalue()
    )


def test_dry_run_and_one_tenant(company: Company, aged: None) -> None:
    out = StringIO()
    call_command("prune_history", "--dry-run", stdout=out)
    assert len(uuids()) == 6 and "would delete 2 call records" in out.getvalue()
    call_command("prune_history", "--tenant", company.tenant.account, stdout=StringIO())
    assert uuids() == {"a-29", "b-29", "b-31", "b-400"}
    with pytest.raises(CommandError):
        call_command("prune_history", "--tenant", "K0", stdout=StringIO())
