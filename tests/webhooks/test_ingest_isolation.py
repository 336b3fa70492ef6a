"""A receiver that hangs never delays the ingest: calls go on being stored while it holds a
request. Ingest and delivery share one event loop here, as in the demo (the worst case; in
production they are separate processes)."""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from ctiboard.calls.models import CallRecord, Outcome
from ctiboard.webhooks.models import DeliveryStatus, WebhookDelivery
from tests.conftest import Company, Pbx
from tests.ingest.support import control, converged, eventually, running
from tests.webhooks.receiver import receiving
from tests.webhooks.support import REMOTE, all_delivered, dispatching, webhook

pytestmark = pytest.mark.django_db(transaction=True)


def statuses_by_event() -> dict[str, str]:
    return dict(WebhookDelivery.objects.values_list("event", "status"))


async def test_a_hanging_receiver_never_delays_the_ingest(
    pbx: Pbx, pbx_company: Company, tracebacks: list[object]
) -> None:
    target = pbx_company.extensions[0].number
    with receiving() as receiver:
        receiver.hang = True
        await sync_to_async(webhook)(pbx_company.tenant, receiver.url)
        async with running(pbx_company), dispatching(timeout=60):
            uuid = (await control(pbx.control.ring, pbx.account, REMOTE, target))["uuid"]
            # The ringing request reached the receiver, which holds it.
            await asyncio.to_thread(receiver.hanging.wait, 10)
            await control(pbx.control.answer, pbx.account, uuid)
            await control(pbx.control.hangup, pbx.account, uuid)

            def recorded() -> bool:
                """the call is stored as answered and over"""
                record = CallRecord.objects.filter(uuid=uuid, extension__number=target).first()
                return record is not None and record.outcome == Outcome.ANSWERED

            await eventually(recorded)
            await converged(pbx, pbx_company)
            # All of that while the first request is still held: nothing waited for it.
            assert len(receiver.received) == 1 and receiver.hang
            assert await sync_to_async(statuses_by_event)() == {
                "ringing": DeliveryStatus.SENDING,
                "answered": DeliveryStatus.PENDING,
                "ended": DeliveryStatus.PENDING,
            }
            receiver.release()
            await eventually(all_delivered(3))
        assert receiver.events() == ["ringing", "answered", "ended"]
