"""Call events fed through the ingest worker's store, webhooks to receive them, and a delivery
worker to send them."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from asgiref.sync import sync_to_async

from ctiboard.cti.events import CallEvent, StateEvent
from ctiboard.ingest import writer
from ctiboard.tenancy.models import Tenant
from ctiboard.webhooks.dispatch import Dispatcher
from ctiboard.webhooks.models import DeliveryStatus, Webhook, WebhookDelivery
from tests.calls.events import REMOTE, T0, at, call, line  # noqa: F401

SECRET = "a-shared-secret-for-tests"


def feed(tenant: Tenant, *events: CallEvent | StateEvent) -> None:
    """Through the worker's store, as the ingest writes them (fresh state each time is fine:
    the tracking reloads active legs from the database)."""
    writer.apply(writer.load_state(tenant.pk), list(events))


def full_call(tenant: Tenant, uuid: str, ext: str = "100", start: float = 0) -> None:
    """Rings 4 s, talks 60 s."""
    feed(tenant, call(uuid, "ring", ext, start))
    feed(tenant, call(uuid, "answer", ext, start + 4))
    feed(tenant, call(uuid, "hangup", ext, start + 64))


def webhook(tenant: Tenant, url: str, **fields: Any) -> Webhook:
    return Webhook.objects.create(
        tenant=tenant, name=fields.pop("name", "CRM"), url=url, secret=SECRET, **fields
    )


FAST = {"poll_interval": 0.02, "retry_base": 0.05, "allow_private_networks": True}


async def eventually(check: Callable[[], object], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await sync_to_async(check)():
        if loop.time() > deadline:
            raise AssertionError(f"not reached within {timeout}s: {check.__doc__ or check}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def dispatching(**options: Any) -> AsyncIterator[Dispatcher]:
    dispatcher = Dispatcher(**{**FAST, **options})
    task = asyncio.create_task(dispatcher.run())
    try:
        yield dispatcher
        assert not task.done(), task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def statuses() -> list[str]:
    return list(WebhookDelivery.objects.order_by("pk").values_list("status", flat=True))


def all_delivered(count: int) -> Callable[[], bool]:
    def check() -> bool:
        """every delivery is delivered"""
        return statuses() == [DeliveryStatus.DELIVERED] * count

    return check
