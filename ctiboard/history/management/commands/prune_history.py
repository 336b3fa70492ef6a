from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db.models import QuerySet
from django.utils import timezone

from ctiboard.calls.models import CallRecord
from ctiboard.tenancy.models import Tenant
from ctiboard.webhooks.models import DeliveryStatus, WebhookDelivery

# Rows per DELETE: short transactions, so the ingest worker's writes never wait long.
BATCH = 2000


class Command(BaseCommand):
    help = (
        "Delete call records (and finished webhook deliveries, which carry the same call "
        "data) older than each tenant's history retention. Run it daily, e.g. from cron."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--tenant", help="Only this K-Account.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted; delete nothing."
        )

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        tenants = Tenant.objects.order_by("account")
        if options["tenant"]:
            tenants = tenants.filter(account=options["tenant"])
            if not tenants.exists():
                raise CommandError(f"no tenant {options['tenant']}")
        now = timezone.now()
        verb = "would delete" if options["dry_run"] else "deleted"
        for tenant in tenants:
            cutoff = now - timedelta(days=tenant.history_days)
            records = CallRecord.objects.filter(tenant=tenant, ended_at__lt=cutoff)
            deliveries = WebhookDelivery.objects.filter(
                tenant=tenant,
                created__lt=cutoff,
                status__in=[DeliveryStatus.DELIVERED, DeliveryStatus.FAILED],
            )
            if options["dry_run"]:
                counts = records.count(), deliveries.count()
            else:
                counts = _delete(records), _delete(deliveries)
            self.stdout.write(
                f"{tenant.account}: {verb} {counts[0]} call records and {counts[1]} webhook "
                f"deliveries older than {tenant.history_days} days"
            )


def _delete(rows: QuerySet[CallRecord] | QuerySet[WebhookDelivery]) -> int:
    total = 0
    while True:
        batch = list(rows.order_by().values_list("pk", flat=True)[:BATCH])
        if not batch:
            return total
        rows.model.objects.filter(pk__in=batch).delete()
        total += len(batch)
