"""The outbox: the call tracking queues one delivery per event and webhook, in its transaction."""

import json

import pytest
from django.db import transaction

from ctiboard.ingest import writer
from ctiboard.tenancy.models import ExtensionGroup
from ctiboard.webhooks.models import DeliveryStatus, WebhookDelivery
from tests.conftest import Company
from tests.webhooks.support import REMOTE, call, feed, full_call, line, webhook

pytestmark = pytest.mark.django_db

URL = "https://crm.example/hook"


def queued(**filters: object) -> list[tuple[str, str, str]]:
    return [
        (d.event, d.uuid, d.extension.number)
        for d in WebhookDelivery.objects.filter(**filters)
        .select_related("extension")
        .order_by("pk")
    ]


def test_ringing_answered_and_ended_are_queued_once_each(company: Company) -> None:
    hook = webhook(company.tenant, URL)
    full_call(company.tenant, "u1")
    assert queued() == [("ringing", "u1", "100"), ("answered", "u1", "100"), ("ended", "u1", "100")]
    ended = WebhookDelivery.objects.get(event="ended")
    body = json.loads(ended.body)
    assert (body["caller"], body["callee"], body["outcome"]) == (REMOTE, "100", "answered")
    assert (body["ring_seconds"], body["talk_seconds"]) == (4.0, 60.0)
    assert body["timestamp"] == body["ended_at"] == "2025-09-23T14:01:04+00:00"
    answered = json.loads(WebhookDelivery.objects.get(event="answered").body)
    assert answered["timestamp"] == answered["answered_at"] == "2025-09-23T14:00:04+00:00"
    assert answered["ring_seconds"] == 4.0 and answered["outcome"] == ""
    assert all(
        d.status == DeliveryStatus.PENDING and d.webhook == hook
        for d in WebhookDelivery.objects.all()
    )
    # Repeated events (the overlap of two call streams) change nothing.
    full_call(company.tenant, "u1")
    assert WebhookDelivery.objects.count() == 3


def test_a_missed_call_rings_and_ends(company: Company) -> None:
    webhook(company.tenant, URL)
    feed(company.tenant, call("u2", "ring", "101", 0))
    feed(company.tenant, call("u2", "hangup", "101", 20))
    assert queued() == [("ringing", "u2", "101"), ("ended", "u2", "101")]
    assert json.loads(WebhookDelivery.objects.get(event="ended").body)["outcome"] == "missed"


def test_a_leg_ended_by_its_idle_line_and_reopened_ends_again_as_a_correction(
    company: Company,
) -> None:
    webhook(company.tenant, URL)
    feed(company.tenant, call("u3", "ring", "100", 0), call("u3", "answer", "100", 2))
    feed(company.tenant, line("100", "idle", 10))  # the hangup fell into a gap
    feed(company.tenant, call("u3", "answer", "100", 12))  # ... but the call goes on
    feed(company.tenant, call("u3", "hangup", "100", 30))
    assert queued() == [
        ("ringing", "u3", "100"),
        ("answered", "u3", "100"),
        ("ended", "u3", "100"),
        ("ended", "u3", "100"),
    ]
    first, second = WebhookDelivery.objects.filter(event="ended").order_by("pk")
    assert (first.revision, second.revision) == (0, 1)
    bodies = [json.loads(d.body) for d in (first, second)]
    assert [(b["corrected"], b["revision"], b["talk_seconds"]) for b in bodies] == [
        (False, 0, 8.0),
        (True, 1, 28.0),
    ]


def test_events_extensions_and_groups_limit_a_webhook(company: Company) -> None:
    tenant = company.tenant
    only_end = webhook(tenant, URL, name="end", on_ringing=False, on_answered=False)
    only_102 = webhook(tenant, URL, name="102")
    only_102.extensions.set([company.extensions[2]])
    sales = ExtensionGroup.objects.create(tenant=tenant, name="Sales")
    sales.extensions.set([company.extensions[3]])
    by_group = webhook(tenant, URL, name="group")
    by_group.groups.set([sales])
    webhook(tenant, URL, name="off", enabled=False)
    for number in ("100", "102", "103"):
        full_call(tenant, f"call-{number}", number)
    assert queued(webhook=only_end) == [
        ("ended", "call-100", "100"),
        ("ended", "call-102", "102"),
        ("ended", "call-103", "103"),
    ]
    assert {d[2] for d in queued(webhook=only_102)} == {"102"}
    assert len(queued(webhook=only_102)) == 3
    assert {d[2] for d in queued(webhook=by_group)} == {"103"}
    assert not queued(webhook__name="off")


def test_no_webhook_of_another_tenant_is_involved(company: Company, other_company: Company) -> None:
    webhook(other_company.tenant, URL)
    full_call(company.tenant, "u4")
    assert WebhookDelivery.objects.count() == 0


def test_queued_in_the_transaction_of_the_call_state(company: Company) -> None:
    """A write that rolls back takes its deliveries with it: nothing reports what was not
    stored."""
    webhook(company.tenant, URL)
    with pytest.raises(RuntimeError), transaction.atomic():
        feed(company.tenant, call("u5", "ring", "100", 0))
        assert WebhookDelivery.objects.count() == 1
        raise RuntimeError("the batch failed")
    assert WebhookDelivery.objects.count() == 0


def test_query_template_renders_into_the_url(company: Company) -> None:
    webhook(
        company.tenant,
        "https://pbx-hooks.example/action",
        body_format="query",
        template="event={event}&from={caller}&to={callee}",
    )
    feed(company.tenant, call("u6", "ring", "100", 0))
    delivery = WebhookDelivery.objects.get()
    assert delivery.method == "GET" and delivery.body == ""
    assert delivery.url == f"https://pbx-hooks.example/action?event=ringing&from={REMOTE}&to=100"


def test_a_running_worker_picks_up_a_new_webhook_after_the_reread_interval(
    company: Company, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = writer.load_state(company.tenant.pk)
    writer.apply(state, [call("u1", "ring", seconds=0)])  # reads the webhooks: none
    webhook(company.tenant, URL)
    writer.apply(state, [call("u1", "answer", seconds=2)])
    assert queued() == []  # within the interval the worker goes by what it read
    monkeypatch.setattr("ctiboard.webhooks.outbox.WEBHOOKS_REREAD", 0.0)
    writer.apply(state, [call("u1", "hangup", seconds=9)])
    assert queued() == [("ended", "u1", "100")]
