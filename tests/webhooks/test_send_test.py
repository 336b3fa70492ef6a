"""The admin's "Send a test event now": a signed request through the delivery worker's own path
to a receiver on 127.0.0.1, and what it answered shown to the administrator."""

import json
import time

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from ctiboard.webhooks.models import Webhook, WebhookDelivery
from tests.conftest import Company, logged_in, make_user
from tests.webhooks.receiver import receiving
from tests.webhooks.support import SECRET, webhook

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(tenant_admin: User) -> Client:
    return logged_in(tenant_admin)


def send_test(client: Client, hook: Webhook) -> list[str]:
    response = client.post(
        reverse("admin:webhooks_webhook_changelist"),
        {"action": "send_test", "_selected_action": [hook.pk]},
        follow=True,
    )
    assert response.status_code == 200
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_the_receiver_gets_a_signed_test_event(
    admin_client: Client, company: Company, settings: object
) -> None:
    settings.CTIBOARD_WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True  # type: ignore[attr-defined]
    with receiving() as receiver:
        hook = webhook(company.tenant, receiver.url, enabled=False)
        hook.extensions.set([company.extensions[2]])
        messages = send_test(admin_client, hook)
        [request] = receiver.received
    assert messages == [f"CRM: {receiver.url} answered HTTP 200."]
    assert request.method == "POST" and request.event == "test"
    assert request.signature_valid(SECRET, now=time.time())
    body = json.loads(request.body)
    assert body["event"] == "test" and body["account"] == company.tenant.account
    assert body["extension"] == company.extensions[2].number
    assert request.headers["x-ctiboard-delivery"] == body["uuid"]
    assert body["uuid"].startswith("test-")
    assert not WebhookDelivery.objects.exists()  # a test never enters the outbox


def test_an_error_answer_is_reported(
    admin_client: Client, company: Company, settings: object
) -> None:
    settings.CTIBOARD_WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True  # type: ignore[attr-defined]
    with receiving() as receiver:
        receiver.statuses = [503]
        hook = webhook(company.tenant, receiver.url)
        messages = send_test(admin_client, hook)
        assert len(receiver.received) == 1
    assert messages == ["CRM: the test event failed: HTTP 503 Service Unavailable"]


def test_a_private_address_is_refused_like_the_worker_refuses_it(
    admin_client: Client, company: Company
) -> None:
    with receiving() as receiver:
        hook = webhook(company.tenant, receiver.url)
        [message] = send_test(admin_client, hook)
        assert receiver.received == []
    assert "non-public address" in message and "refused" in message


def test_another_tenants_webhook_cannot_be_tested(
    admin_client: Client, company: Company, other_company: Company, settings: object
) -> None:
    settings.CTIBOARD_WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True  # type: ignore[attr-defined]
    with receiving() as receiver:
        theirs = webhook(other_company.tenant, receiver.url)
        send_test(admin_client, theirs)
        assert receiver.received == []


def test_plain_users_cannot_send_tests(client: Client, company: Company) -> None:
    user: User = make_user("plain")
    client.force_login(user)
    hook = webhook(company.tenant, "https://crm.example/hook")
    response = client.post(
        reverse("admin:webhooks_webhook_changelist"),
        {"action": "send_test", "_selected_action": [hook.pk]},
    )
    assert response.status_code == 302 and "/login/" in response["Location"]
