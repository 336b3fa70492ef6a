"""The transactional outbox: the ingest worker writes a ``WebhookDelivery`` per matching
webhook for what its call tracking saw happen, in the very transaction that stores the call
state it reports. Nothing here
talks to the network: a slow or dead endpoint cannot hold up the ingest (``dispatch`` sends).
"""

import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Max
from django.utils import timezone

from ctiboard.calls.models import ActiveCall, CallRecord
from ctiboard.calls.tracking import Happened

from . import payloads
from .models import EVENT_FLAGS, Event, Webhook, WebhookDelivery

logger = logging.getLogger(__name__)

RINGING, ANSWERED, ENDED = Event.RINGING, Event.ANSWERED, Event.ENDED


@dataclass(frozen=True)
class Subscriber:
    """An enabled webhook and the extensions it watches (None: every extension)."""

    webhook: Webhook
    extension_ids: frozenset[int] | None

    def wants(self, event: Event, extension_id: int) -> bool:
        return bool(getattr(self.webhook, EVENT_FLAGS[event])) and (
            self.extension_ids is None or extension_id in self.extension_ids
        )


def subscribers_of(tenant_id: int) -> list[Subscriber]:
    """The tenant's enabled webhooks: one query, three if it has any."""
    hooks = list(
        Webhook.objects.filter(tenant_id=tenant_id, enabled=True)
        .select_related("tenant")
        .order_by("pk")
    )
    if not hooks:
        return []
    watched: dict[int, set[int]] = {}
    for hook_id, extension_id in Webhook.extensions.through.objects.filter(
        webhook__in=hooks
    ).values_list("webhook_id", "extension_id"):
        watched.setdefault(hook_id, set()).add(extension_id)
    for hook_id, extension_id in Webhook.groups.through.objects.filter(
        webhook__in=hooks
    ).values_list("webhook_id", "extensiongroup__extensions"):
        # A chosen group without members still restricts the webhook (to nobody).
        members = watched.setdefault(hook_id, set())
        if extension_id is not None:
            members.add(extension_id)
    return [
        Subscriber(hook, frozenset(watched[hook.pk]) if hook.pk in watched else None)
        for hook in hooks
    ]


# Seconds a worker goes by the webhooks it read: one added or changed in the admin applies to
# the calls of a busy PBX within this long (reading them for every batch was a tenth of the
# worker's time, for tenants that mostly have none).
WEBHOOKS_REREAD = 5.0


@dataclass
class Subscriptions:
    """A tenant's subscribers as the ingest worker last read them (at most every
    WEBHOOKS_REREAD), read only when a call event needs them."""

    tenant_id: int
    _subscribers: list[Subscriber] | None = None
    _read_at: float = 0.0

    def current(self) -> list[Subscriber]:
        now = time.monotonic()
        if self._subscribers is None or now - self._read_at >= WEBHOOKS_REREAD:
            self._subscribers = subscribers_of(self.tenant_id)
            self._read_at = now
        return self._subscribers


def report(happened: Iterable[Happened], subscriptions: Subscriptions) -> None:
    """Inside the ingest's transaction: queue what happened to call legs for the webhooks."""
    for fact in happened:
        enqueue(
            Event(fact.event),
            fact.leg,
            at=fact.at,
            subscribers=subscriptions.current(),
            revises=fact.revises,
        )


def enqueue(
    event: Event,
    leg: ActiveCall | CallRecord,
    *,
    at: datetime | None = None,
    subscribers: list[Subscriber] | None = None,
    revises: bool = False,
) -> int:
    """Inside the caller's transaction: queue ``event`` of this call leg (at ``at``, by default
    the leg's own time of it) for every enabled webhook of its tenant that wants the event and
    watches the leg's extension; returns how many. ``subscribers``: the tenant's, if the
    caller has read them already (the ingest worker reads them once per batch). ``revises``:
    the leg's end may have been queued before; a webhook that has it gets a correction (the
    next revision), one that has not gets its first."""
    extension = leg.extension
    if subscribers is None:
        subscribers = subscribers_of(leg.tenant_id)
    hooks = [s.webhook for s in subscribers if s.wants(event, extension.pk)]
    if not hooks:
        return 0
    record = leg if isinstance(leg, CallRecord) else None
    answered_at = leg.answered_at or (at if event == ANSWERED else None)
    if record is not None:
        ring_seconds, talk_seconds = record.ring_seconds, record.talk_seconds
    else:
        ring_seconds, talk_seconds = _seconds(leg.started_at, answered_at), None
    occurred_at = at or {
        RINGING: leg.started_at,
        ANSWERED: answered_at,
        ENDED: record.ended_at if record else None,
    }.get(event)
    revisions = _next_revisions(hooks, leg) if revises and event == ENDED else {}
    values = payloads.values_of(
        event,
        account=hooks[0].tenant.account,
        uuid=leg.uuid,
        extension=extension.number,
        extension_name=extension.name,
        direction=leg.direction,
        partner=leg.partner,
        outcome=record.outcome if record else "",
        timestamp=occurred_at,
        started_at=leg.started_at,
        answered_at=answered_at,
        ended_at=record.ended_at if record else None,
        ring_seconds=ring_seconds,
        talk_seconds=talk_seconds,
    )
    rows = []
    for hook in hooks:
        revision = revisions.get(hook.pk, 0)
        hook_values = {**values, "corrected": revision > 0, "revision": revision}
        try:
            request = payloads.render(hook.body_format, hook.template, hook.url, hook_values)
        except payloads.TemplateError as exc:  # validated when saved; never stop the ingest
            logger.warning("webhook %s: template does not render: %s", hook.pk, exc)
            continue
        rows.append(
            WebhookDelivery(
                tenant_id=leg.tenant_id,
                webhook=hook,
                event=event,
                revision=revision,
                uuid=leg.uuid,
                extension=extension,
                occurred_at=occurred_at,
                method=request.method,
                url=request.url,
                content_type=request.content_type,
                body=request.body,
            )
        )
    # A repeated event of the same leg (the overlap of two call streams) is already queued:
    # the unique constraint keeps the first.
    WebhookDelivery.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


# The event of the admin's "send a test event": receivers can tell it from calls.
TEST_EVENT = "test"


def test_delivery(webhook: Webhook) -> WebhookDelivery:
    """A ``test`` event for the webhook, rendered like a call's, never stored: the admin sends
    it at once (``dispatch.send_test``). An inbound call on one of its extensions, just now."""
    extension = (
        webhook.extensions.order_by("number").first()
        or webhook.tenant.extensions.filter(active=True).order_by("number").first()
    )
    now = timezone.now()
    leg = f"test-{uuid.uuid4().hex}"
    values = payloads.values_of(
        TEST_EVENT,
        account=webhook.tenant.account,
        uuid=leg,
        extension=extension.number if extension else "",
        extension_name=extension.name if extension else "",
        direction="inbound",
        partner="4930123456789",
        outcome="",
        timestamp=now,
        started_at=now,
        answered_at=None,
        ended_at=None,
        ring_seconds=None,
        talk_seconds=None,
    )
    request = payloads.render(webhook.body_format, webhook.template, webhook.url, values)
    return WebhookDelivery(
        tenant_id=webhook.tenant_id,
        webhook=webhook,
        event=TEST_EVENT,
        uuid=leg,
        extension=extension,
        occurred_at=now,
        method=request.method,
        url=request.url,
        content_type=request.content_type,
        body=request.body,
    )


def _next_revisions(hooks: list[Webhook], leg: ActiveCall | CallRecord) -> dict[int, int]:
    """Per webhook that has queued this leg's end already: the revision of a correction."""
    queued = (
        WebhookDelivery.objects.filter(
            webhook__in=hooks, uuid=leg.uuid, extension_id=leg.extension_id, event=ENDED
        )
        .values("webhook_id")
        .annotate(latest=Max("revision"))
    )
    return {row["webhook_id"]: row["latest"] + 1 for row in queued}


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())
