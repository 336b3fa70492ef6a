"""One subscription per web process and tenant; pushed batches reach the sockets from there.

Were every board socket in the tenant's group, the channel layer would deliver each batch
once per socket (a queue and, with Redis pub/sub, a copy each), and each socket's consumer
task would wake up to decode, check and send it: ~100 µs a socket, a core at 250 sockets and
200 events/s. Instead the process joins the tenant's group once, here: the batch is decoded
once, each socket's checks are a few comparisons (``BoardConsumer.on_batch``), the frames are
rendered once per audience and written without a task switch (``ctiboard.lib.wsframes``).

Whatever else the tenant's group carries (the PBX status) is forwarded to each socket's own
channel, to its consumer's handlers as before.
"""

import asyncio
import logging
import weakref
from dataclasses import dataclass, field
from typing import Any, Protocol

from channels.layers import BaseChannelLayer, get_channel_layer

from ctiboard.ops.metrics import observe_push
from ctiboard.pbx.events import tenant_group

from .pushes import Batch, batch_of

logger = logging.getLogger(__name__)


class Subscriber(Protocol):
    channel_name: str

    def on_batch(self, batch: Batch) -> None:
        """Called in the event loop for every batch of the tenant, in order; must not block."""


@dataclass(eq=False)
class _Feed:
    tenant_id: int
    subscribers: set[Subscriber] = field(default_factory=set)
    channel: str = ""
    opened: "asyncio.Task[None] | None" = None
    reader: "asyncio.Task[None] | None" = None


class FanOut:
    """The tenant subscriptions of one event loop (a web process) on one channel layer."""

    def __init__(self, layer: BaseChannelLayer) -> None:
        self.layer = layer
        self._feeds: dict[int, _Feed] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def subscribers(self, tenant_id: int) -> int:
        feed = self._feeds.get(tenant_id)
        return len(feed.subscribers) if feed else 0

    async def subscribe(self, tenant_id: int, subscriber: Subscriber) -> None:
        """From when this returns, every batch of the tenant reaches ``subscriber``."""
        feed = self._feeds.get(tenant_id)
        if feed is None:
            feed = self._feeds[tenant_id] = _Feed(tenant_id)
            feed.opened = asyncio.get_running_loop().create_task(self._open(feed))
        feed.subscribers.add(subscriber)
        assert feed.opened is not None
        try:
            # Shielded: one socket giving up does not cancel the others' subscription.
            await asyncio.shield(feed.opened)
        except BaseException:
            self.unsubscribe(tenant_id, subscriber)
            raise

    def unsubscribe(self, tenant_id: int, subscriber: Subscriber) -> None:
        feed = self._feeds.get(tenant_id)
        if feed is None:
            return
        feed.subscribers.discard(subscriber)
        if not feed.subscribers:
            del self._feeds[tenant_id]
            task = asyncio.get_running_loop().create_task(self._close(feed))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _open(self, feed: _Feed) -> None:
        feed.channel = await self.layer.new_channel("fanout.")
        await self.layer.group_add(tenant_group(feed.tenant_id), feed.channel)
        feed.reader = asyncio.get_running_loop().create_task(
            self._read(feed), name=f"fanout-{feed.tenant_id}"
        )

    async def _close(self, feed: _Feed) -> None:
        if feed.opened is not None and not feed.opened.done():
            try:
                await feed.opened
            except Exception:
                return
        if feed.reader is not None:
            feed.reader.cancel()
        if feed.channel:
            try:
                await self.layer.group_discard(tenant_group(feed.tenant_id), feed.channel)
            except Exception:  # the layer is gone (a test's loop ending, Redis down): it expires
                logger.debug("could not leave %s", tenant_group(feed.tenant_id), exc_info=True)

    async def _read(self, feed: _Feed) -> None:
        while True:
            message = await self.layer.receive(feed.channel)
            try:
                await self._deliver(feed, message)
            except Exception:
                logger.exception("could not deliver a %s message", message.get("type"))

    async def _deliver(self, feed: _Feed, message: dict[str, Any]) -> None:
        if message.get("type") != "extensions.changed":
            for subscriber in list(feed.subscribers):
                await self.layer.send(subscriber.channel_name, message)
            return
        observe_push(message)
        batch = batch_of(message)
        for subscriber in list(feed.subscribers):
            try:
                subscriber.on_batch(batch)
            except Exception:  # one socket's failure must not cost the others the batch
                logger.exception("a board socket could not take a batch")


_fanouts: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FanOut]" = (
    weakref.WeakKeyDictionary()
)


def fanout() -> FanOut:
    """The running event loop's fan-out on the default channel layer."""
    loop = asyncio.get_running_loop()
    layer = get_channel_layer()
    assert layer is not None, "the board needs a channel layer (CHANNEL_LAYERS)"
    current = _fanouts.get(loop)
    if current is None or current.layer is not layer:
        current = _fanouts[loop] = FanOut(layer)
    return current
