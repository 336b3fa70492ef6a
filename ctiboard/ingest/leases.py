"""Tenant leases: each tenant's streams are consumed by exactly one ingest worker at a time.

The standard lease technique on a database table, with conditional UPDATEs only, so that it
runs on PostgreSQL in production and on SQLite in the demo alike:

- ``IngestLease`` has one row per tenant: ``holder`` (a worker id) and ``expires_at``.
- A worker *acquires* a lease with ``UPDATE ... SET holder=me, expires_at=now()+ttl WHERE
  tenant=X AND (holder=me OR holder='' OR expires_at <= now())``. The database serialises the
  UPDATEs of one row (PostgreSQL re-checks the WHERE against the committed row after waiting
  for a concurrent writer; SQLite has one writer at a time), so one worker's UPDATE matches and
  every other's matches no row.
- The holder *renews* its leases every ``ttl / 3`` (``WHERE holder=me AND expires_at > now()``)
  and *releases* them when it stops (``holder=''``), so a graceful stop hands over at once and a
  dead worker's tenants are free ``ttl`` seconds after its last renewal.
- Every time is the database's ``now()``: the clocks of the workers' hosts never compare.
- The holder itself stops a tenant's stream *before* the database could consider the lease
  expired: a renewal sent at monotonic time ``t`` makes the lease valid until at least
  ``t + ttl`` in database time, so the worker stops the stream at ``t + ttl - margin`` unless
  a later renewal succeeded (``Supervisor`` arms a timer per tenant). A worker cut off from the
  database therefore stops consuming before anybody else may start.
- ``IngestWorker`` rows are heartbeats, renewed every second or so and live for ``dead_after``
  (3 s): live workers divide the tenants between them, each taking at most
  ``ceil(tenants / live workers)``, and a tenant whose holder's heartbeat is stale counts as
  unserved at once (coverage.py) — but is *taken over* only when its lease expires: a stale
  heartbeat does not prove that the holder stopped streaming, the lease timer does.
- A worker id is an *identity*, stable across restarts (identity.py), so a restarted worker's
  acquire matches its own rows and it resumes its tenants at once. Each process start has an
  ``incarnation`` of its own in the heartbeat row; every lease write carries the condition that
  no other incarnation owns the identity, so a predecessor that still runs cannot renew once a
  successor has claimed the identity. The successor adopts the leases only when the predecessor
  is proven dead (same host, its pid gone); otherwise it marks them as a predecessor's
  (``holder = "~" + id``) and waits for them to expire like any dead worker's.
"""

import logging
import math
import os
import socket
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import DateTimeField, Exists, ExpressionWrapper, Q
from django.db.models.functions import Now

from ctiboard.tenancy.models import IngestLease, IngestWorker

logger = logging.getLogger(__name__)

_NEVER = datetime(2000, 1, 1, tzinfo=UTC)
# Heartbeat rows of workers that died are deleted this long after they expired.
_FORGET_AFTER = timedelta(minutes=10)
# A heartbeat older than this many intervals means the worker is dead (for readiness, status).
DEAD_AFTER_INTERVALS = 3


class IdentityLost(RuntimeError):
    """Another process claimed this worker's identity: stop streaming at once."""


def new_incarnation() -> str:
    return uuid.uuid4().hex


def _db_now_plus(seconds: float) -> ExpressionWrapper:
    return ExpressionWrapper(Now() + timedelta(seconds=seconds), output_field=DateTimeField())


def fair_share(tenants: int, live_workers: int) -> int:
    """How many tenants one worker may hold: together the workers cover all of them."""
    return math.ceil(tenants / max(1, live_workers))


def predecessor_holder(worker_id: str) -> str:
    """The holder of leases left by an earlier incarnation not proven dead."""
    return f"~{worker_id}"[:100]


@dataclass(frozen=True)
class Predecessor:
    """The heartbeat row found under an identity when claiming it."""

    incarnation: str
    hostname: str
    pid: int
    live: bool


class Leases:
    """One worker's view of the lease table. Synchronous: call it from a thread."""

    def __init__(
        self,
        worker_id: str,
        ttl: float,
        *,
        dead_after: float = 3.0,
        incarnation: str | None = None,
    ) -> None:
        if ttl <= 0:
            raise ValueError("the lease ttl must be positive")
        self.worker_id = worker_id
        self.ttl = ttl
        self.dead_after = dead_after
        self.incarnation = incarnation or new_incarnation()

    def _unchallenged(self) -> Q:
        """No other incarnation owns this identity (checked inside every lease write)."""
        return ~Q(
            Exists(
                IngestWorker.objects.filter(pk=self.worker_id).exclude(incarnation=self.incarnation)
            )
        )

    # --- identity ----------------------------------------------------------------------------

    def predecessor(self) -> Predecessor | None:
        row = (
            IngestWorker.objects.filter(pk=self.worker_id)
            .exclude(incarnation=self.incarnation)
            .annotate(live=Q(expires_at__gt=Now()))
            .values_list("incarnation", "hostname", "pid", "live")
            .first()
        )
        return Predecessor(*row) if row else None

    def claim(self, predecessor: Predecessor | None, *, adopt: bool) -> bool:
        """Make this process the identity's incarnation, replacing ``predecessor`` (as read).

        With ``adopt`` (the predecessor is proven dead) its leases are this worker's at once;
        without, they are marked as a predecessor's and expire. False if the row changed
        meanwhile (another process claimed it first)."""
        fields = {
            "incarnation": self.incarnation,
            "hostname": socket.gethostname()[:255],
            "pid": os.getpid(),
            "started_at": Now(),
            "expires_at": _db_now_plus(self.dead_after),
        }
        with transaction.atomic():
            if predecessor is None:
                try:
                    with transaction.atomic():
                        IngestWorker.objects.create(worker_id=self.worker_id, **fields)
                except IntegrityError:
                    return False
            elif not IngestWorker.objects.filter(
                pk=self.worker_id, incarnation=predecessor.incarnation
            ).update(**fields):
                return False
            if not adopt:
                IngestLease.objects.filter(holder=self.worker_id).update(
                    holder=predecessor_holder(self.worker_id)
                )
        return True

    # --- heartbeat ---------------------------------------------------------------------------

    def heartbeat(self) -> int:
        """Say this worker is alive for another ``dead_after``; returns the live workers."""
        updated = IngestWorker.objects.filter(
            pk=self.worker_id, incarnation=self.incarnation
        ).update(expires_at=_db_now_plus(self.dead_after))
        if not updated and not self.claim(None, adopt=True):
            raise IdentityLost(f"worker id {self.worker_id} was claimed by another process")
        forget = ExpressionWrapper(Now() - _FORGET_AFTER, output_field=DateTimeField())
        IngestWorker.objects.filter(expires_at__lt=forget).delete()
        return IngestWorker.objects.filter(expires_at__gt=Now()).count()

    def announce_stop(self, grace: float) -> None:
        """A planned stop: count as alive while the streams wind down, then hand over."""
        IngestWorker.objects.filter(pk=self.worker_id, incarnation=self.incarnation).update(
            expires_at=_db_now_plus(grace)
        )

    def retire(self) -> None:
        """A graceful stop: free every lease at once and leave the set of live workers."""
        self.release(None)
        IngestWorker.objects.filter(pk=self.worker_id, incarnation=self.incarnation).delete()

    # --- leases ------------------------------------------------------------------------------

    def claimable(self, tenant_ids: Collection[int]) -> list[int]:
        """Of these tenants, those nobody holds (never leased, released or expired)."""
        if not tenant_ids:
            return []
        rows = IngestLease.objects.filter(tenant_id__in=tenant_ids)
        leased = set(rows.values_list("pk", flat=True))
        free = set(
            rows.filter(
                Q(holder="") | Q(holder=self.worker_id) | Q(expires_at__lte=Now())
            ).values_list("pk", flat=True)
        )
        return sorted(free | (set(tenant_ids) - leased))

    def acquire(self, tenant_id: int) -> bool:
        """Take the tenant's lease if it is free; True when this worker holds it now."""
        IngestLease.objects.bulk_create(
            [IngestLease(tenant_id=tenant_id, holder="", expires_at=_NEVER)],
            ignore_conflicts=True,
        )
        taken = (
            IngestLease.objects.filter(tenant_id=tenant_id)
            .filter(Q(holder="") | Q(holder=self.worker_id) | Q(expires_at__lte=Now()))
            .filter(self._unchallenged())
            .update(holder=self.worker_id, expires_at=_db_now_plus(self.ttl), acquired_at=Now())
        )
        return taken == 1

    def renew(self, tenant_ids: Collection[int]) -> set[int]:
        """Extend these leases; returns those still held (the others are lost: stop them)."""
        if not tenant_ids:
            return set()
        mine = IngestLease.objects.filter(
            tenant_id__in=tenant_ids, holder=self.worker_id, expires_at__gt=Now()
        ).filter(self._unchallenged())
        mine.update(expires_at=_db_now_plus(self.ttl))
        # Renewed rows stay ours until they expire: nobody can have taken them in between.
        return set(mine.values_list("pk", flat=True))

    def release(self, tenant_ids: Collection[int] | None) -> None:
        """Give up these leases (all of this worker's with None); stop their streams first.

        ``expires_at`` becomes the time of the release: readiness grants a planned hand-over
        a grace from there (coverage.py)."""
        mine = IngestLease.objects.filter(holder=self.worker_id).filter(self._unchallenged())
        if tenant_ids is not None:
            mine = mine.filter(tenant_id__in=tenant_ids)
        mine.update(holder="", expires_at=Now())


def live_holders(tenant_ids: Collection[int]) -> dict[int, str]:
    """Tenant id → worker id, for the tenants held by a worker with a live heartbeat."""
    live = IngestWorker.objects.filter(expires_at__gt=Now()).values_list("pk", flat=True)
    return dict(
        IngestLease.objects.filter(
            tenant_id__in=tenant_ids, expires_at__gt=Now(), holder__in=live
        ).values_list("pk", "holder")
    )
