"""One subscription per web process and tenant; pushed batches reach the sockets from there.

A channel-layer delivery and a consumer wake-up per socket and batch cost too much, so the
process joins the tenant's group once: a batch is decoded once and handed to every socket in
one pass (``BoardConsumer.on_batch``), its frames written without a task switch
(``ctiboard.lib.wsframes``). See bench/README.md, section "Fan-out: one subscription per
process".

Rounds are at least ``CTIBOARD_PUSH_INTERVAL`` apart, more with more than a thousand sockets
(one send each); batches that arrive meanwhile, or while a round is busy, wait in the inbox,
and the next round merges those with consecutive numbers into one. A quiet tenant's change
goes out at once; a busy one's reach each socket as one message per round, and a process with
thousands of sockets sends fewer, larger messages instead of falling behind: the batching
adapts to each process's load, which the worker cannot see.

Whatever else the tenant's group carries (the PBX status) is forwarded to each socket's own
channel, to its consumer's handlers as before.
"""

import asyncio
import logging
import math
import weakref
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from channels.layers import BaseChannelLayer, get_channel_layer
from django.conf import settings

from ctiboard.lib.metrics import observe_push
from ctiboard.live.groups import tenant_group

from .pushes import Batch, batch_of, merge

logger = logging.getLogger(__name__)


# Sockets a round may write at the push interval; more make rounds rarer (FanOut.spacing).
SOCKETS_PER_ROUND = 1000


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
    tasks: "list[asyncio.Task[None]]" = field(default_factory=list)
    inbox: deque[dict[str, Any]] = field(default_factory=deque)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


class FanOut:
    """The tenant subscriptions of one event loop (a web process) on one channel layer."""

    def __init__(self, layer: BaseChannelLayer, interval: float | None = None) -> None:
        self.layer = layer
        self.interval = settings.CTIBOARD_PUSH_INTERVAL if interval is None else interval
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
        loop = asyncio.get_running_loop()
        feed.tasks = [
            loop.create_task(self._receive(feed), name=f"fanout-receive-{feed.tenant_id}"),
            loop.create_task(self._deliver(feed), name=f"fanout-deliver-{feed.tenant_id}"),
        ]

    async def _close(self, feed: _Feed) -> None:
        if feed.opened is not None and not feed.opened.done():
            try:
                await feed.opened
            except Exception:
                return
        for task in feed.tasks:
            task.cancel()
        if feed.channel:
            try:
                await self.layer.group_discard(tenant_group(feed.tenant_id), feed.channel)
            except Exception:  # the layer is gone (a test's loop ending, Redis down): it expires
                logger.debug("could not leave %s", tenant_group(feed.tenant_id), exc_info=True)

    async def _receive(self, feed: _Feed) -> None:
        while True:
            feed.inbox.append(await self.layer.receive(feed.channel))
            feed.arrived.set()

    async def _deliver(self, feed: _Feed) -> None:
        loop = asyncio.get_running_loop()
        last_round = -math.inf
        while True:
            await feed.arrived.wait()
            # A round at most every interval: the first change after a quiet spell goes at
            # once, a busy tenant's changes in one message per round (a browser draws a
            # screen 60 times a second at most; more messages only cost it time).
            wait = last_round + self.spacing(len(feed.subscribers)) - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            feed.arrived.clear()
            last_round = loop.time()
            messages = list(feed.inbox)
            feed.inbox.clear()
            for item in _coalesced(messages):
                try:
                    if isinstance(item, Batch):
                        self._fan_out(feed, item)
                    else:
                        for subscriber in list(feed.subscribers):
                            await self.layer.send(subscriber.channel_name, item)
                except Exception:
                    logger.exception("could not deliver a message of %s", feed.tenant_id)

    def spacing(self, sockets: int) -> float:
        """Seconds from one round to the next. Each round writes a frame to every socket, one
        send each: past ``SOCKETS_PER_ROUND`` sockets rounds space out in proportion, so the
        process makes no more sends per second than that many sockets at the push interval
        and keeps time for connects and its other tenants. (Why not by the last round's
        duration: bench/README.md, section "Fan-out: one subscription per process".)"""
        return self.interval * max(1.0, sockets / SOCKETS_PER_ROUND)

    def _fan_out(self, feed: _Feed, batch: Batch) -> None:
        for subscriber in list(feed.subscribers):
            try:
                subscriber.on_batch(batch)
            except Exception:  # one socket's failure must not cost the others the batch
                logger.exception("a board socket could not take a batch")


def _coalesced(messages: list[dict[str, Any]]) -> Iterator[Batch | dict[str, Any]]:
    """The inbox in order, each run of batches with consecutive numbers as one batch.

    A gap (a lost message) ends a run: merged across it, a socket could not notice it."""
    run: list[Batch] = []
    for message in messages:
        if message.get("type") != "extensions.changed":
            if run:
                yield merge(run)
                run = []
            yield message
            continue
        observe_push(message)
        batch = batch_of(message)
        if run and batch.first != run[-1].last + 1:
            yield merge(run)
            run = []
        run.append(batch)
    if run:
        yield merge(run)


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
