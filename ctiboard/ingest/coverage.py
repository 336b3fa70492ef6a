"""Which enabled tenants have a live stream, and saying so when one has none.

A tenant is *served* while its lease is held by a worker whose heartbeat is live (leases.py:
heartbeats are stale ``dead_after``, 3 s, after a worker dies, long before its leases expire).
A tenant released within ``HANDOVER_GRACE`` counts as *handing over*: a planned stop or
rebalance announced it and a peer takes it in its next round, so readiness does not flap.
Anything else is *unserved*: its stored status becomes ``unserved`` (and is pushed to the
boards), so no board keeps saying "connected" for a stream nobody reads.
"""

from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.db.models import DateTimeField, Exists, ExpressionWrapper, OuterRef, Q
from django.db.models.functions import Now
from django.utils import timezone

from ctiboard.live import publish
from ctiboard.tenancy.models import ConnectionStatus, IngestLease, IngestWorker, Tenant

HANDOVER_GRACE = timedelta(seconds=5)
UNSERVED_DETAIL = "no live ingest worker streams this tenant"


@dataclass(frozen=True)
class Coverage:
    holders: dict[int, str]  # tenant id → live worker id
    handing_over: set[int]
    unserved: set[int]


def _served_or_handing_over() -> Q:
    """For a Tenant queryset: a live worker holds it, or it was released a moment ago."""
    live = IngestWorker.objects.filter(expires_at__gt=Now()).values("pk")
    since = ExpressionWrapper(Now() - HANDOVER_GRACE, output_field=DateTimeField())
    return Q(
        Exists(
            IngestLease.objects.filter(tenant=OuterRef("pk")).filter(
                Q(expires_at__gt=Now(), holder__in=live) | Q(holder="", expires_at__gt=since)
            )
        )
    )


def coverage(tenant_ids: Collection[int]) -> Coverage:
    since = ExpressionWrapper(Now() - HANDOVER_GRACE, output_field=DateTimeField())
    live = IngestWorker.objects.filter(expires_at__gt=Now()).values("pk")
    leases = IngestLease.objects.filter(tenant_id__in=tenant_ids)
    holders = dict(leases.filter(expires_at__gt=Now(), holder__in=live).values_list("pk", "holder"))
    handing_over = set(leases.filter(holder="", expires_at__gt=since).values_list("pk", flat=True))
    return Coverage(holders, handing_over, set(tenant_ids) - holders.keys() - handing_over)


def mark_unserved(tenant_ids: Collection[int]) -> list[int]:
    """Store and push status ``unserved`` for these tenants if they are still unserved (checked
    in the UPDATE itself: a worker taking one over meanwhile writes its own status)."""
    marked = []
    for tenant_id in tenant_ids:
        with transaction.atomic():
            updated = (
                Tenant.objects.filter(pk=tenant_id, enabled=True)
                .exclude(connection_status=ConnectionStatus.UNSERVED)
                .exclude(_served_or_handing_over())
                .update(
                    connection_status=ConnectionStatus.UNSERVED,
                    status_detail=UNSERVED_DETAIL,
                    status_since=timezone.now(),
                )
            )
            if updated:
                tenant = Tenant.objects.only(*Tenant.STATUS_FIELDS).get(pk=tenant_id)
                publish.tenant_status_changed(tenant_id, tenant.status_payload())
                marked.append(tenant_id)
    return marked


def marked_unserved(tenant_ids: Collection[int]) -> set[int]:
    """Of these tenants, those whose stored status says unserved."""
    return set(
        Tenant.objects.filter(
            pk__in=tenant_ids, connection_status=ConnectionStatus.UNSERVED
        ).values_list("pk", flat=True)
    )
