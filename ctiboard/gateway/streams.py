"""The gateway's open SSE streams: fed by the process's fan-out (``live.fanout``) like the board's
sockets, never by a connection of their own to the PBX, and filtered by the one rule.

Each stream also has a channel of its own in the user's group (``visibility.changed``: rights,
deactivation) and its API token's (``api_token.changed``: revocation). Either makes it check
its grant again at once: a stream whose grant is gone ends, one whose rights changed sends the
states of extensions it may now see and drops the others.
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.utils import timezone

from ctiboard.live.batches import Batch
from ctiboard.live.fanout import Link, fanout
from ctiboard.live.groups import api_token_group, user_group
from ctiboard.tenancy.models import Extension

from . import nfon
from .access import Grant, View, grant_of, view_of

logger = logging.getLogger(__name__)

# NFON's streams send a comment after this long without an event.
KEEPALIVE_INTERVAL = 15.0
# Batches a stream keeps while it loads its state; past this it loads once more.
MAX_PENDING = 400
# Channel-layer messages that make a stream check its grant again.
RECHECK = frozenset({"visibility.changed", "api_token.changed"})


class Stream:
    """One open SSE response of a grant; a ``live.fanout.Subscriber``."""

    def __init__(self, grant: Grant) -> None:
        self.grant = grant
        self.account = grant.tenant.account
        self.tenant_id = grant.tenant.pk
        self.channel_name = ""
        self.outbox: list[bytes] = []
        self.wake = asyncio.Event()
        self.ended = False
        self.recheck = False
        self.resync = False
        # While the stream loads its state, batches wait (as on the board's sockets).
        self.syncing = True
        self.pending: list[Batch | list[dict[str, Any]]] = []
        self.seq = 0
        self.known: frozenset[int] = frozenset()
        self.inactive: frozenset[int] = frozenset()
        self.visible: dict[int, str] = {}  # id -> number
        self.details: frozenset[int] = frozenset()

    # --- the response -----------------------------------------------------------------------

    async def events(self) -> AsyncIterator[bytes]:
        layer = get_channel_layer()
        assert layer is not None
        self.channel_name = await layer.new_channel("gateway.")
        groups = (user_group(self.grant.user.pk), api_token_group(self.grant.token.pk))
        for group in groups:
            await layer.group_add(group, self.channel_name)
        listener = asyncio.create_task(self._listen(layer))
        await fanout().subscribe(self.tenant_id, self)
        try:
            await self._load()
            # Daphne sends the status line with the first body write: the client knows it
            # is subscribed once it has the headers, whether or not there is an event.
            yield b""
            while not self.ended:
                if self.outbox:
                    data = b"".join(self.outbox)
                    self.outbox.clear()
                    yield data
                    continue
                self.wake.clear()
                try:
                    await asyncio.wait_for(self.wake.wait(), self._timeout())
                except TimeoutError:
                    if self._expired():
                        return
                    yield nfon.KEEPALIVE
                if self.recheck:
                    self.recheck = False
                    await self._recheck()
                if self.resync and not self.ended:
                    self.resync = False
                    await self._load()
        finally:
            fanout().unsubscribe(self.tenant_id, self)
            listener.cancel()
            for group in groups:
                try:
                    await layer.group_discard(group, self.channel_name)
                except Exception:  # the layer is down: the membership expires with it
                    logger.debug("could not leave %s", group, exc_info=True)

    def _timeout(self) -> float:
        expires = self.grant.token.expires_at
        if expires is None:
            return KEEPALIVE_INTERVAL
        return max(0.0, min(KEEPALIVE_INTERVAL, (expires - timezone.now()).total_seconds()))

    def _expired(self) -> bool:
        return not self.grant.token.active

    async def _listen(self, layer: Any) -> None:
        while True:
            message = await layer.receive(self.channel_name)
            if message.get("type") in RECHECK:
                self.recheck = True
                self.wake.set()

    async def _recheck(self) -> None:
        grant = await sync_to_async(_fresh_grant)(self.grant)
        if grant is None:
            self.ended = True
            return
        self.grant = grant
        await self._load()

    async def _load(self) -> None:
        """What the grant sees now, from the database: the states it has not sent yet (the
        whole state, the first time), then the batches that came meanwhile."""
        self.syncing = True
        view = await sync_to_async(view_of)(self.grant)
        self.seq, self.known, self.inactive = view.seq, view.known, view.inactive
        self.visible = {e.pk: e.number for e in view.extensions}
        self.details = view.details
        self.loaded(view)
        pending, self.pending = self.pending, []
        self.syncing = False
        for item in pending:
            if isinstance(item, Batch):
                self.on_batch(item)
            else:
                self.on_calls(item)
        if self.outbox:
            self.wake.set()

    def loaded(self, view: View) -> None:
        """The stream's state was (re)loaded."""

    def changed(self, extension: Extension, batch: Batch) -> None:
        """A visible extension changed."""

    def send(self, data: bytes) -> None:
        self.outbox.append(data)
        self.wake.set()

    def want_resync(self) -> None:
        self.syncing = True
        self.resync = True
        self.wake.set()

    # --- the fan-out ------------------------------------------------------------------------

    def on_batch(self, batch: Batch) -> None:
        if self.syncing:
            if len(self.pending) < MAX_PENDING:
                self.pending.append(batch)
            else:
                self.resync = True
                self.wake.set()
            return
        if batch.last <= self.seq:
            return
        if batch.first > self.seq + 1:  # a lost batch
            self.want_resync()
            return
        for extension in batch.extensions:
            if extension.seq <= self.seq:
                continue  # the load saw it
            if extension.pk not in self.known or (
                extension.active and extension.pk in self.inactive
            ):
                # A new extension, or one back: whether it is visible asks the database.
                self.want_resync()
                return
            if extension.pk in self.visible:
                if not extension.active:
                    del self.visible[extension.pk]
                else:
                    self.changed(extension, batch)
        self.seq = batch.last

    def on_pulse(self, seq: int, status: dict[str, Any]) -> None:
        if not self.syncing and seq > self.seq:  # the stream missed a batch
            self.want_resync()

    def on_status(self, status: dict[str, Any]) -> None:
        """NFON's streams have no word for ctiboard's PBX status."""

    def on_link(self, link: Link) -> None:
        """Nor for the link to the worker."""

    def on_calls(self, events: list[dict[str, Any]]) -> None:
        """Only the call stream passes call events on."""


def _fresh_grant(grant: Grant) -> Grant | None:
    from .models import ApiToken

    token = ApiToken.objects.select_related("user", "tenant").filter(pk=grant.token.pk).first()
    return grant_of(token)


class StateStream(Stream):
    """``GET /extensions/phone/states`` as SSE: every visible extension's state first (NFON's
    bootstrap, on every connect), then each change of line or presence."""

    def __init__(self, grant: Grant) -> None:
        super().__init__(grant)
        self.sent: dict[int, tuple[str, str]] = {}

    def loaded(self, view: View) -> None:
        for extension in view.extensions:
            self._state(extension, None)
        self.sent = {pk: shown for pk, shown in self.sent.items() if pk in self.visible}

    def changed(self, extension: Extension, batch: Batch) -> None:
        self._state(extension, batch)

    def _state(self, extension: Extension, batch: Batch | None) -> None:
        shown = (extension.line, extension.presence)
        if self.sent.get(extension.pk) == shown:
            return  # a change of the tile's call only, or a state sent already
        self.sent[extension.pk] = shown
        if batch is None:
            self.send(nfon.frame(nfon.state_event(extension, self.account)))
            return
        # Every stream of the process sends the same bytes for this state.
        key = ("nfon-state", extension.pk, extension.seq)
        data = batch.renders.get(key)
        if data is None:
            data = batch.renders[key] = nfon.frame(nfon.state_event(extension, self.account))
        self.send(data)


class CallStream(Stream):
    """``GET /extensions/phone/calls``: the call events of visible extensions from now on,
    partners and numbers only where the grant may see call details."""

    def loaded(self, view: View) -> None:
        self.numbers = {e.number: e.pk for e in view.extensions}

    def on_calls(self, events: list[dict[str, Any]]) -> None:
        if self.syncing:
            if len(self.pending) < MAX_PENDING:
                self.pending.append(events)
            return
        for event in events:
            pk = self.numbers.get(str(event.get("extension", "")))
            if pk is None or pk not in self.visible:
                continue
            self.send(nfon.frame(nfon.call_event(event, self.account, details=pk in self.details)))
