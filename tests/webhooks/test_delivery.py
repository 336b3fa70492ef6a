"""The delivery worker against a local receiver: once per event, signed, retried, isolated.

Progress is judged by order (what the receiver and the database saw when), never by the clock.
"""

import asyncio
import json
import time
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db.models.functions import Now

from ctiboard.webhooks.models import DeliveryStatus, WebhookDelivery
from tests.conftest import Company
from tests.webhooks.receiver import receiving
from tests.webhooks.support import (
    REMOTE,
    SECRET,
    all_delivered,
    call,
    dispatching,
    eventually,
    feed,
    full_call,
    statuses,
    webhook,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def test_each_event_is_delivered_once_with_a_valid_signature(company: Company) -> None:
    with receiving() as receiver:
        await sync_to_async(webhook)(company.tenant, receiver.url)
        await sync_to_async(full_call)(company.tenant, "u1")
        async with dispatching():
            await eventually(all_delivered(3))
            # One more event, queued after the first three were delivered: once it is
            # delivered too, the worker has had every chance to send anything twice.
            await sync_to_async(feed)(company.tenant, call("u2", "ring", "101", 100))
            await eventually(all_delivered(4))
        assert receiver.events() == ["ringing", "answered", "ended", "ringing"]
        ids = [r.delivery for r in receiver.received]
        assert len(set(ids)) == 4
        for request in receiver.received:
            assert request.method == "POST"
            assert request.headers["content-type"] == "application/json"
            assert request.signature_valid(SECRET, now=time.time())
            assert not request.signature_valid("another-secret-entirely", now=time.time())
        ended = json.loads(receiver.received[2].body)
        assert (ended["event"], ended["uuid"], ended["caller"], ended["outcome"]) == (
            "ended",
            "u1",
            REMOTE,
            "answered",
        )
    rows = await sync_to_async(list)(WebhookDelivery.objects.order_by("pk"))
    assert [(r.attempts, r.response_status, r.claim_token) for r in rows] == [(1, 200, "")] * 4
    assert all(r.delivered_at is not None for r in rows)


async def test_get_with_query_string_is_signed_over_the_query(company: Company) -> None:
    with receiving() as receiver:
        await sync_to_async(webhook)(
            company.tenant,
            receiver.url + "?key=abc",
            body_format="query",
            template="event={event}&from={caller}&name={extension_name}",
            on_answered=False,
            on_ended=False,
        )
        await sync_to_async(feed)(company.tenant, call("u1", "ring", "100", 0))
        async with dispatching():
            await eventually(all_delivered(1))
        [request] = receiver.received
        assert request.method == "GET"
        assert request.path == f"/hook?key=abc&event=ringing&from={REMOTE}&name=Person%200"
        assert request.signature_valid(SECRET, now=time.time())


async def test_a_failed_request_is_retried_with_backoff(company: Company) -> None:
    with receiving() as receiver:
        receiver.statuses = [500, 503]
        await sync_to_async(webhook)(company.tenant, receiver.url, on_answered=False)
        await sync_to_async(feed)(company.tenant, call("u1", "ring", "100", 0))
        async with dispatching():
            await eventually(all_delivered(1))
        assert receiver.events() == ["ringing"] * 3
        assert len({r.delivery for r in receiver.received}) == 1  # the same delivery
        assert all(r.signature_valid(SECRET, now=time.time()) for r in receiver.received)
    row = await WebhookDelivery.objects.aget()
    assert (row.attempts, row.response_status, row.last_error) == (3, 200, "")


async def test_after_the_last_attempt_a_delivery_has_failed(company: Company) -> None:
    with receiving() as receiver:
        receiver.statuses = [500] * 10
        await sync_to_async(webhook)(company.tenant, receiver.url, on_answered=False)
        await sync_to_async(feed)(company.tenant, call("u1", "ring", "100", 0))
        async with dispatching(max_attempts=3):

            def failed() -> bool:
                """the delivery has failed"""
                return statuses() == [DeliveryStatus.FAILED]

            await eventually(failed)
        assert len(receiver.received) == 3
    row = await WebhookDelivery.objects.aget()
    assert (row.attempts, row.response_status) == (3, 500)
    assert row.last_error == "Internal Server Error"


async def test_two_workers_never_send_the_same_delivery(company: Company) -> None:
    with receiving() as receiver:
        for n in range(4):
            await sync_to_async(webhook)(company.tenant, receiver.url, name=f"hook {n}")
        for n in range(5):
            await sync_to_async(full_call)(company.tenant, f"u{n}", str(100 + n))
        async with dispatching(worker_id="a"), dispatching(worker_id="b"):
            await eventually(all_delivered(60), timeout=20)
        ids = [r.delivery for r in receiver.received]
        assert len(ids) == 60 and len(set(ids)) == 60


async def test_a_hanging_endpoint_does_not_hold_up_other_webhooks(company: Company) -> None:
    with receiving() as slow, receiving() as fast:
        slow.hang = True
        slow_hook = await sync_to_async(webhook)(
            company.tenant, slow.url, name="slow", on_answered=False, on_ended=False
        )
        await sync_to_async(webhook)(company.tenant, fast.url, name="fast")
        await sync_to_async(full_call)(company.tenant, "u1")
        async with dispatching(timeout=30):
            await asyncio.to_thread(slow.hanging.wait, 10)

            def fast_done() -> bool:
                """the other webhook's deliveries are delivered"""
                rows = WebhookDelivery.objects.exclude(webhook=slow_hook)
                return {d.status for d in rows} == {DeliveryStatus.DELIVERED}

            await eventually(fast_done)
            # ... while the slow endpoint still holds its request.
            held = await WebhookDelivery.objects.aget(webhook=slow_hook)
            assert held.status == DeliveryStatus.SENDING and len(slow.received) == 1
            assert fast.events() == ["ringing", "answered", "ended"]
            slow.release()
            await eventually(all_delivered(4))
    row = await WebhookDelivery.objects.aget(webhook=slow_hook)
    assert row.attempts == 1


async def test_a_request_without_answer_in_time_is_retried(company: Company) -> None:
    with receiving() as slow:
        slow.hang = True
        await sync_to_async(webhook)(company.tenant, slow.url, on_answered=False)
        await sync_to_async(feed)(company.tenant, call("u1", "ring", "100", 0))
        async with dispatching(timeout=0.3):

            def retried() -> bool:
                """the request timed out and was tried again"""
                return len(slow.received) >= 2

            await eventually(retried)
            waited = await WebhookDelivery.objects.aget()
            assert waited.last_error == "no answer within 0.3s" or waited.attempts >= 2
            slow.release()
            await eventually(all_delivered(1))
        assert {r.delivery for r in slow.received} == {waited.pk}


async def test_requests_in_flight_are_bounded(company: Company) -> None:
    with receiving() as receiver:
        receiver.hang = True
        for n in range(4):
            await sync_to_async(webhook)(
                company.tenant, receiver.url, name=f"hook {n}", on_answered=False
            )
        await sync_to_async(feed)(company.tenant, call("u1", "ring", "100", 0))
        async with dispatching(concurrency=2, timeout=30):

            def two_sending() -> bool:
                """two requests are in flight"""
                return statuses().count(DeliveryStatus.SENDING) == 2

            await eventually(two_sending)
            await asyncio.sleep(0.3)  # many poll intervals: nothing more may start
            assert len(receiver.received) == 2
            assert (await sync_to_async(statuses)()).count(DeliveryStatus.PENDING) == 2
            receiver.release()
            await eventually(all_delivered(4))
        assert len({r.delivery for r in receiver.received}) == 4


async def test_private_addresses_are_refused_unless_allowed(company: Company) -> None:
    with receiving() as receiver:
        await sync_to_async(webhook)(company.tenant, receiver.url, on_answered=False)
        await sync_to_async(feed)(company.tenant, call("u1", "ring", "100", 0))
        async with dispatching(allow_private_networks=False, max_attempts=1):

            def failed() -> bool:
                """the delivery failed without a request"""
                return statuses() == [DeliveryStatus.FAILED]

            await eventually(failed)
        assert receiver.received == []
    row = await WebhookDelivery.objects.aget()
    assert "non-public address" in row.last_error


async def test_a_dead_workers_claim_expires_and_a_live_claim_is_left_alone(
    company: Company,
) -> None:
    with receiving() as receiver:
        await sync_to_async(webhook)(company.tenant, receiver.url, on_answered=False)
        await sync_to_async(feed)(company.tenant, call("dead", "ring", "100", 0))
        await sync_to_async(feed)(company.tenant, call("live", "ring", "101", 0))

        def claim() -> None:
            sending = {"status": DeliveryStatus.SENDING, "attempts": 1}
            WebhookDelivery.objects.filter(uuid="dead").update(
                claim_token="gone", claimed_until=Now() - timedelta(seconds=1), **sending
            )
            WebhookDelivery.objects.filter(uuid="live").update(
                claim_token="busy", claimed_until=Now() + timedelta(hours=1), **sending
            )

        await sync_to_async(claim)()
        async with dispatching():

            def taken_over() -> bool:
                """the dead worker's delivery was sent"""
                return WebhookDelivery.objects.get(uuid="dead").status == DeliveryStatus.DELIVERED

            await eventually(taken_over)
        live = await WebhookDelivery.objects.aget(uuid="live")
        assert (live.status, live.claim_token) == (DeliveryStatus.SENDING, "busy")
        assert [json.loads(r.body)["uuid"] for r in receiver.received] == ["dead"]
