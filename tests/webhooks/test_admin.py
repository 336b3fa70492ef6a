"""Webhooks and their delivery log in the admin: tenant administrators see only their own."""

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from ctiboard.webhooks.models import DeliveryStatus, Webhook, WebhookDelivery
from tests.conftest import Company
from tests.webhooks.support import SECRET, full_call, webhook

pytestmark = pytest.mark.django_db


def form(company: Company, **overrides: object) -> dict[str, object]:
    return {
        "tenant": company.tenant.pk,
        "name": "CRM",
        "url": "https://crm.example/hook",
        "enabled": "on",
        "on_ringing": "on",
        "on_ended": "on",
        "body_format": "json",
        "template": "",
        "secret": SECRET,
        **overrides,
    }


def test_tenant_admin_adds_a_webhook_for_his_tenant_only(
    tenant_admin: User, company: Company, other_company: Company
) -> None:
    client = Client()
    client.force_login(tenant_admin)
    add = reverse("admin:webhooks_webhook_add")
    foreign = other_company.extensions[0]
    refused = client.post(add, form(company, extensions=[foreign.pk]))
    assert refused.status_code == 200 and not Webhook.objects.exists()
    refused = client.post(add, form(other_company))
    assert refused.status_code == 200 and not Webhook.objects.exists()
    refused = client.post(add, form(company, template='{"a": "{caller.__class__}"}'))
    assert "Unknown placeholder" in refused.content.decode()
    refused = client.post(add, form(company, secret=""))
    assert "needs a shared secret" in refused.content.decode()
    response = client.post(add, form(company, extensions=[company.extensions[1].pk]))
    assert response.status_code == 302, response.content.decode()[:3000]
    hook = Webhook.objects.get()
    assert (hook.tenant, hook.secret, hook.on_answered) == (company.tenant, SECRET, False)
    assert list(hook.extensions.all()) == [company.extensions[1]]
    # The secret is never shown again; an empty field keeps it.
    change = reverse("admin:webhooks_webhook_change", args=[hook.pk])
    assert SECRET not in client.get(change).content.decode()
    assert client.post(change, form(company, secret="", name="CRM 2")).status_code == 302
    hook.refresh_from_db()
    assert (hook.name, hook.secret) == ("CRM 2", SECRET)


def test_delivery_log_is_scoped_and_read_only(
    tenant_admin: User, company: Company, other_company: Company
) -> None:
    mine = webhook(company.tenant, "https://crm.example/a", name="mine")
    webhook(other_company.tenant, "https://crm.example/b", name="theirs")
    full_call(company.tenant, "u-mine")
    full_call(other_company.tenant, "u-theirs")
    client = Client()
    client.force_login(tenant_admin)
    log = client.get(reverse("admin:webhooks_webhookdelivery_changelist"))
    assert log.status_code == 200 and log.context["cl"].result_count == 3
    html = log.content.decode()
    assert "u-mine" in html and "u-theirs" not in html
    hooks = client.get(reverse("admin:webhooks_webhook_changelist")).content.decode()
    assert "mine" in hooks and "theirs" not in hooks
    theirs = WebhookDelivery.objects.exclude(webhook=mine).first()
    assert theirs is not None
    page = client.get(reverse("admin:webhooks_webhookdelivery_change", args=[theirs.pk]))
    assert page.status_code in (302, 404)
    own = WebhookDelivery.objects.filter(webhook=mine).first()
    assert own is not None
    detail = client.get(reverse("admin:webhooks_webhookdelivery_change", args=[own.pk]))
    assert detail.status_code == 200 and "u-mine" in detail.content.decode()
    assert client.get(reverse("admin:webhooks_webhookdelivery_add")).status_code == 403


def test_retry_now_sends_failed_deliveries_again(tenant_admin: User, company: Company) -> None:
    webhook(company.tenant, "https://crm.example/a")
    full_call(company.tenant, "u1")
    WebhookDelivery.objects.update(status=DeliveryStatus.FAILED, attempts=8)
    client = Client()
    client.force_login(tenant_admin)
    response = client.post(
        reverse("admin:webhooks_webhookdelivery_changelist"),
        {
            "action": "retry_now",
            "_selected_action": list(WebhookDelivery.objects.values_list("pk", flat=True)),
        },
    )
    assert response.status_code == 302
    assert set(WebhookDelivery.objects.values_list("status", "attempts")) == {
        (DeliveryStatus.PENDING, 0)
    }
