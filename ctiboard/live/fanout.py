"""One subscription per web process and tenant; pushed batches reach the board's sockets and
the gateway's streams from there (both are ``Subscriber``s).

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

The worker's pulse (``live.publish.tenant_pulse``) is handed to every socket in order with
the batches: a socket behind it lost a batch and re-syncs. A feed that hears no pulse for
``PULSE_TIMEOUT``, or whose channel layer fails, tells its sockets the link to the worker is
broken (``on_link``) until pulses come again. The PBX status goes to the sockets
the same way; anything else the tenant's group carries is forwarded to each socket's own
channel, to its consumer's handlers.
"""

import asyncio
import logging
import math
import time
import weakref
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from channels.layers import BaseChannelLayer, get_channel_layer
from django.conf import settings

from ctiboard.lib.metrics import SENT_AT, observe_push
from ctiboard.lib.outage import Outage, is_connection_error

from .batches import Batch, batch_of, merge
from .groups import tenant_group
from .publish import PULSE_TIMEOUT

logger = logging.getLogger(__name__)


# Sockets a round may write at the push interval; more make rounds rarer (FanOut.spacing).
SOCKETS_PER_ROUND = 1000


# How often a feed looks whether its pulse is overdue (seconds): a small part of the 3 s
# within which a silent worker must show.
WATCH_INTERVAL = 0.1
layer_outage = Outage(logger, "the channel layer (board fan-out)")


class Subscriber(Protocol):
    channel_name: str

    def on_batch(self, batch: Batch) -> None:
        """Called in the event loop for every batch of the tenant, in order; must not block."""

    def on_pulse(self, seq: int, status: dict[str, Any]) -> None:
        """The worker's pulse, in order with the batches; must not block."""

    def on_status(self, status: dict[str, Any]) -> None:
        """The tenant's PBX status changed (``Tenant.status_payload()``); must not block."""

    def on_link(self, link: "Link") -> None:
        """The link to the worker broke (no pulse, or the channel layer failed) or is back."""

    def on_calls(self, events: list[dict[str, Any]]) -> None:
        """Call events of the tenant as the PBX reported them (``publish.calls_reported``),
        in order with the batches; must not block."""


@dataclass(frozen=True)
class Link:
    """Whether this process hears the tenant's worker; when not, ``since`` is the wall-clock
    time of the last pulse (None if none came), i.e. how old what the sockets show may be."""

    live: bool | None  # None: no pulse yet, and not overdue either (a feed just opened)
    since: float | None = None


@dataclass(eq=False)
class _Feed:
    tenant_id: int
    subscribers: set[Subscriber] = field(default_factory=set)
    channel: str = ""
    opened: "asyncio.Task[None] | None" = None
    tasks: "list[asyncio.Task[None]]" = field(default_factory=list)
    inbox: deque[dict[str, Any]] = field(default_factory=deque)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    # The pulse: loop time of the last one (or of the feed's start), its wall-clock time.
    pulse_at: float = 0.0
    pulse_wall: float | None = None
    link: Link = Link(live=None)


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

    def link(self, tenant_id: int) -> Link:
        """What this process knows of the tenant's worker now."""
        feed = self._feeds.get(tenant_id)
        return feed.link if feed is not None else Link(live=None)

    async def subscribe(self, tenant_id: int, subscriber: Subscriber) -> None:
        """From when this returns, every batch of the tenant reaches ``subscriber``."""
        feed = self._feeds.get(tenant_id)
        if feed is None:
            feed = self._feeds[tenant_id] = _Feed(tenant_id)
        failed = (
            feed.opened is not None
            and feed.opened.done()
            and (feed.opened.cancelled() or feed.opened.exception() is not None)
        )
        if feed.opened is None or failed:
            # The first subscription, or the last try failed (the channel layer was down).
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
        try:
            if not feed.channel:
                feed.channel = await self.layer.new_channel("fanout.")
            await self.layer.group_add(tenant_group(feed.tenant_id), feed.channel)
        except Exception as exc:
            layer_outage.failed(exc)
            raise
        loop = asyncio.get_running_loop()
        feed.pulse_at = loop.time()
        feed.tasks = [
            loop.create_task(self._receive(feed), name=f"fanout-receive-{feed.tenant_id}"),
            loop.create_task(self._deliver(feed), name=f"fanout-deliver-{feed.tenant_id}"),
            loop.create_task(self._watch(feed), name=f"fanout-watch-{feed.tenant_id}"),
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
        delay = 0.5
        while True:
            try:
                message = await self.layer.receive(feed.channel)
            except Exception as exc:
                # The channel layer is down: the sockets are told at once, not after the
                # pulse timeout; the subscription is made again once it answers.
                layer_outage.failed(exc)
                self._set_link(feed, Link(live=False, since=feed.pulse_wall))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                try:
                    await self.layer.group_add(tenant_group(feed.tenant_id), feed.channel)
                except Exception as again:
                    layer_outage.failed(again)
                continue
            delay = 0.5
            layer_outage.recovered()
            feed.inbox.append(message)
            feed.arrived.set()

    async def _watch(self, feed: _Feed) -> None:
        """No pulse for PULSE_TIMEOUT: the worker or the channel layer is gone."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            if feed.link.live is not False and loop.time() - feed.pulse_at > PULSE_TIMEOUT:
                self._set_link(feed, Link(live=False, since=feed.pulse_wall))

    def _set_link(self, feed: _Feed, link: Link) -> None:
        if link == feed.link:
            return
        feed.link = link
        for subscriber in list(feed.subscribers):
            try:
                subscriber.on_link(link)
            except Exception:
                logger.exception("a board socket could not take the link state")

    def _pulse(self, feed: _Feed, message: dict[str, Any]) -> None:
        feed.pulse_at = asyncio.get_running_loop().time()
        feed.pulse_wall = message.get(SENT_AT) or time.time()
        seq, status = message["seq"], message["status"]
        for subscriber in list(feed.subscribers):
            try:
                subscriber.on_pulse(seq, status)
            except Exception:
                logger.exception("a board socket could not take a pulse")
        held_since = message.get("held_since")
        if held_since:
            # The worker is alive but cannot store what the PBX says: behind since then.
            self._set_link(feed, Link(live=False, since=held_since))
            return
        # After the sockets saw the pulse (and asked for what they lost): live again.
        self._set_link(feed, Link(live=True))

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
                    elif item.get("type") == "tenant.pulse":
                        self._pulse(feed, item)
                    elif item.get("type") == "tenant.status":
                        for subscriber in list(feed.subscribers):
                            subscriber.on_status(item["status"])
                    elif item.get("type") == "calls.reported":
                        self._calls(feed, item["events"])
                    else:
                        for subscriber in list(feed.subscribers):
                            await self.layer.send(subscriber.channel_name, item)
                except Exception as exc:
                    if not is_connection_error(exc):  # else the channel layer (Redis) is down
                        logger.exception("could not deliver a message of %s", feed.tenant_id)
                    layer_outage.failed(exc)

    def spacing(self, sockets: int) -> float:
        """Seconds from one round to the next. Each round writes a frame to every socket, one
        send each: past ``SOCKETS_PER_ROUND`` sockets rounds space out in proportion, so the
        process makes no more sends per second than that many sockets at the push interval
        and keeps time for connects and its other tenants. (Why not by the last round's
        duration: bench/README.md, section "Fan-out: one subscription per process".)"""
        return self.interval * max(1.0, sockets / SOCKETS_PER_ROUND)

    def _calls(self, feed: _Feed, events: list[dict[str, Any]]) -> None:
        for subscriber in list(feed.subscribers):
            try:
                subscriber.on_calls(events)
            except Exception:
                logger.exception("a subscriber could not take call events")

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
    assert layer is not None, "live pushes need a channel layer (CHANNEL_LAYERS)"
    current = _fanouts.get(loop)
    if current is None or current.layer is not layer:
        current = _fanouts[loop] = FanOut(layer)
    return current
