"""The board's WebSocket: htmx out-of-band swaps of exactly the tiles this user may see."""

import json
import logging
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import HttpRequest, QueryDict
from django.template.loader import render_to_string
from django.utils import translation

from ctiboard.contacts.models import lookup as lookup_contacts
from ctiboard.ops.metrics import observe_push
from ctiboard.pbx.events import tenant_group, user_group
from ctiboard.pbx.models import CallAttempt, Extension, Tenant

from .grid import BoardView, build_grid, partner_contacts
from .incoming import Ring, ring_of
from .pushes import batch_of, tile_messages
from .rendering import (
    pack,
    render_call_oob,
    render_grid_messages,
    render_grid_version_oob,
    render_status_oob,
    render_tile,
)
from .viewer import Viewer, membership_for

logger = logging.getLogger(__name__)

# Close codes of our own (4000-4999): the browser must not reconnect blindly after these.
CLOSE_NOT_ALLOWED = 4403
# A view message is a query string; anything longer is not from our page.
MAX_MESSAGE = 2000
# A socket whose page is more changes behind than this gets the whole grid, not the tiles
# changed since: by then most tiles changed anyway, and a full grid also puts them back in
# the page's sort order (board.js only re-sorts pushed tiles for "sort by status").
MAX_CHANGES_SINCE_PAGE = 10_000


@dataclass(frozen=True)
class PageGrid:
    """What the browser shows, from the socket URL (board.js copies it from #grid-version)."""

    seq: int
    fingerprint: str

    @classmethod
    def from_query(cls, query: QueryDict) -> "PageGrid | None":
        since, fingerprint = query.get("since", ""), query.get("grid", "")
        if not since or not since.isdigit() or not fingerprint or len(fingerprint) > 64:
            return None
        return cls(int(since), fingerprint)


# Sockets of equal rights share one frozenset of extension ids instead of a copy each, and
# every socket of a tenant shares the tenant's sets: a set of 5,000 ids is ~660 KB with its
# int objects, two or three of them per socket. Weak values: a set goes with its last socket.
_SHARED_IDS: "weakref.WeakValueDictionary[int, frozenset[int]]" = weakref.WeakValueDictionary()
_SHARED_IDS_LOCK = threading.Lock()


def shared_ids(ids: Iterable[int]) -> frozenset[int]:
    """The process's one frozenset of these ids (read-only, like every frozenset)."""
    candidate = frozenset(ids)
    key = hash(candidate)
    with _SHARED_IDS_LOCK:
        existing = _SHARED_IDS.get(key)
        if existing is not None and existing == candidate:
            return existing
        # A different set under the same hash loses its slot; both stay correct, unshared.
        _SHARED_IDS[key] = candidate
        return candidate


@dataclass
class Sync:
    """What a socket sends to bring its browser up to date, and what it keeps from it."""

    messages: list[str]
    viewer: Viewer
    seq: int
    known: frozenset[int]
    inactive: frozenset[int]
    visible: frozenset[int]
    ring: Ring | None


def favourites_changed(user_id: int) -> None:
    """The user pinned or unpinned a tile: his other open boards redraw their grid."""

    def send() -> None:
        layer = get_channel_layer()
        if layer is not None:
            async_to_sync(layer.group_send)(user_group(user_id), {"type": "favourites.changed"})

    transaction.on_commit(send, robust=True)


def _language_of(scope: dict[str, Any]) -> str:
    """The language Django's LocaleMiddleware would choose for this socket's handshake."""
    request = HttpRequest()
    request.COOKIES = dict(scope.get("cookies") or {})
    for name, value in scope.get("headers", []):
        if name == b"accept-language":
            request.META["HTTP_ACCEPT_LANGUAGE"] = value.decode("latin-1")
    return translation.get_language_from_request(request)


def render_incoming_oob(ring: Ring | None) -> str:
    return render_to_string("board/board.html#incoming", {"ring": ring, "oob": True})


class BoardConsumer(AsyncWebsocketConsumer):
    viewer: Viewer | None = None
    visible: frozenset[int] = frozenset()
    groups_joined: tuple[str, ...] = ()
    # The page's search, filters and sort (from the socket URL, then from the page): a grid
    # sent over the socket looks like the one the page asked for.
    view: BoardView = BoardView()
    ring: Ring | None = None
    # The tenant's sequence number this socket is up to, and every extension id it knows of:
    # a jump in the one (a lost message) or a stranger in the other (a new extension) makes
    # the socket resend the whole grid from the database.
    seq: int = 0
    known: frozenset[int] = frozenset()
    # Extensions gone from the PBX: one that comes back needs the whole grid too.
    inactive: frozenset[int] = frozenset()

    language: str = ""

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Everything this socket renders speaks the page's language, like the page itself.
        if not self.language:
            self.language = _language_of(self.scope)
        with translation.override(self.language):
            if message["type"] == "extensions.changed":
                # The hot path, once per socket for every pushed batch: channels' dispatch
                # would first hop to a thread to close old database connections, and this
                # handler reaches the database only through database_sync_to_async, which
                # does that itself.
                await self.extensions_changed(message)
            else:
                await super().dispatch(message)

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_NOT_ALLOWED)
            return
        account = self.scope["url_route"]["kwargs"]["account"]
        membership = await database_sync_to_async(membership_for)(user, account)
        if membership is None:
            await self.close(code=CLOSE_NOT_ALLOWED)
            return
        query = QueryDict(self.scope.get("query_string", b"").decode("latin-1"))
        self.view = BoardView.from_query(query)
        self.groups_joined = (tenant_group(membership.tenant_id), user_group(user.pk))
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        # Whatever happened since the page was rendered (or the socket was away): what
        # changed since, or the whole current state if more than tiles changed.
        await self.send_everything(PageGrid.from_query(query))

    async def disconnect(self, code: int) -> None:
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The page says which view it shows now: ``{"view": "q=anna&sort=status"}``.

        Only remembered, for the next grid this socket sends; anything else is ignored.
        """
        if text_data is None or len(text_data) > MAX_MESSAGE:
            logger.debug("ignored %d bytes from a board socket", len(text_data or bytes_data or ""))
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            return
        if isinstance(message, dict) and isinstance(message.get("view"), str):
            self.view = BoardView.from_query(message["view"].lstrip("?"))

    @database_sync_to_async
    def _load(self, page: PageGrid | None) -> Sync | None:
        # Fresh from the database: the user may have been deactivated since the socket opened.
        user = get_user_model().objects.filter(pk=self.scope["user"].pk).first()
        membership = membership_for(user, self.scope["url_route"]["kwargs"]["account"])
        if membership is None:
            return None
        known = dict(Extension.objects.filter(tenant=membership.tenant).values_list("pk", "active"))
        grid = build_grid(user, membership, self.view)
        viewer = grid.viewer
        own = next((tile.ext for tile in grid.tiles() if tile.mine), None)
        contacts = partner_contacts(viewer, [own] if own is not None else [])
        ring = ring_of(own, viewer, contacts.get(own.call_partner) if own else None)
        # The PBX status last: it ends every sync, however many messages it takes.
        tail = [render_incoming_oob(ring), render_status_oob(viewer.tenant)]
        if (
            page is not None
            and page.fingerprint == grid.fingerprint
            and grid.seq - MAX_CHANGES_SINCE_PAGE <= page.seq <= grid.seq
        ):
            changed = [
                render_tile(
                    tile.ext,
                    viewer,
                    oob=True,
                    hidden=tile.hidden,
                    contact=tile.contact,
                    scope=tile.scope,
                )
                for tile in grid.tiles()
                if tile.ext.seq > page.seq
            ]
            messages = pack([*changed, render_grid_version_oob(grid), *tail])
        else:
            messages = render_grid_messages(grid, tail)
        return Sync(
            messages=messages,
            viewer=viewer,
            # Loaded after joining the tenant's group: nothing newer than this can be missed.
            seq=viewer.tenant.event_seq,
            known=shared_ids(known),
            inactive=shared_ids(pk for pk, active in known.items() if not active),
            visible=shared_ids(tile.ext.pk for tile in grid.tiles()),
            ring=ring,
        )

    async def send_everything(self, page: PageGrid | None = None) -> None:
        sync = await self._load(page)
        if sync is None:
            # Membership revoked while connected.
            await self.close(code=CLOSE_NOT_ALLOWED)
            return
        self.viewer = sync.viewer
        self.seq = sync.seq
        self.known = sync.known
        self.inactive = sync.inactive
        self.visible = sync.visible
        self.ring = sync.ring
        for message in sync.messages:
            await self.send(text_data=message)

    # --- channel layer events, one handler each -------------------------------------------

    async def extensions_changed(self, event: dict[str, Any]) -> None:
        observe_push(event)
        viewer = self.viewer
        if viewer is None:
            return
        batch = batch_of(event)
        # One writer per tenant stamps consecutive numbers and publishes them in order, so a
        # gap means this socket missed a message (e.g. the channel layer reconnected).
        if (
            batch.first > self.seq + 1
            or any(e.pk not in self.known for e in batch.extensions)
            or any(e.active and e.pk in self.inactive for e in batch.extensions)
        ):
            await self.send_everything()
            return
        self.seq = max(self.seq, batch.last)
        changed = [e for e in batch.extensions if e.pk in self.visible]
        if not changed:
            return
        if not all(extension.active for extension in changed):
            # A tile goes away: the whole grid, sections and counts included.
            await self.send_everything()
            return
        messages = list(tile_messages(batch, viewer, changed))
        own = next((e for e in changed if e.pk == viewer.own_extension_id), None)
        if own is not None:
            ring = ring_of(own, viewer, batch.contacts.get(own.pk) if viewer.details else None)
            if ring != self.ring:
                self.ring = ring
                messages[-1:] = pack([messages[-1], render_incoming_oob(ring)])
        for message in messages:
            await self.send(text_data=message)

    async def tenant_status(self, event: dict[str, Any]) -> None:
        tenant = await Tenant.objects.filter(pk=event["tenant_id"]).afirst()
        if tenant is not None:
            await self.send(text_data=render_status_oob(tenant))

    async def visibility_changed(self, event: dict[str, Any]) -> None:
        await self.send_everything()

    async def favourites_changed(self, event: dict[str, Any]) -> None:
        await self.send_everything()

    async def call_progress(self, event: dict[str, Any]) -> None:
        if self.viewer is None:
            return
        attempt = await CallAttempt.objects.filter(
            pk=event["attempt_id"], user_id=self.viewer.user_id, tenant=self.viewer.tenant
        ).afirst()
        if attempt is None:
            return
        contact = None
        if attempt.callee_context == "global" and self.viewer.details:
            contact = (
                await database_sync_to_async(lookup_contacts)(self.viewer.tenant, [attempt.callee])
            ).get(attempt.callee)
        await self.send(
            text_data=render_call_oob(
                attempt, self.viewer.tenant.account, contact.name if contact else ""
            )
        )
