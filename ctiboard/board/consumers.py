"""The board's WebSocket: htmx out-of-band swaps of exactly the tiles this user may see."""

import asyncio
import json
import logging
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.db import transaction
from django.http import HttpRequest, QueryDict
from django.template.loader import render_to_string
from django.utils import timezone, translation

from ctiboard.calls.models import CallAttempt
from ctiboard.lib.outage import is_connection_error
from ctiboard.lib.wsframes import Frame, SocketWriter, writer_for
from ctiboard.live.batches import Batch
from ctiboard.live.fanout import Link, fanout
from ctiboard.live.groups import user_group
from ctiboard.live.publish import layer_outage
from ctiboard.live.sessions import digest, session_login, unseal
from ctiboard.tenancy.models import Extension, Tenant, membership_for

from .grid import BoardView, build_grid
from .grid_html import render_grid_messages, render_grid_version_oob
from .pushes import RESYNC, Audience, changes_for, frames_for, partner_of
from .rendering import (
    pack,
    render_call_oob,
    render_link_oob,
    render_pushed_status,
    render_status_oob,
    render_tile,
)
from .ringing import Ring, ring_of
from .viewer import Viewer

logger = logging.getLogger(__name__)

# Close codes of our own (4000-4999): the browser must not reconnect blindly after 4403 (not
# allowed, or signed out: board.js asks whether it still has a login, else shows the login
# page); after 4503 (the channel layer is down: no live updates to give) it retries with backoff.
CLOSE_NOT_ALLOWED = 4403
CLOSE_UNAVAILABLE = 4503
# A view message is a query string; anything longer is not from our page.
MAX_MESSAGE = 2000
# A socket whose page is more changes behind than this gets the whole grid, not the tiles
# changed since: by then most tiles changed anyway, and a full grid also puts them back in
# the page's sort order (board.js only re-sorts pushed tiles for "sort by status").
MAX_CHANGES_SINCE_PAGE = 10_000
# Batches a socket keeps while it loads its state from the database (the fan-out hands over
# one per CTIBOARD_PUSH_INTERVAL at most: 8 s at 50 a second); past this it loads once more.
MAX_PENDING = 400


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
# Tasks started from synchronous code (``on_batch``), kept until done.
_background: set["asyncio.Task[None]"] = set()


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
    session_expires: datetime


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
    tenant: Tenant | None = None
    visible: frozenset[int] = frozenset()
    tenant_id: int | None = None
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
    audience: Audience | None = None
    writer: SocketWriter | None = None
    # While the socket loads its state, batches wait; they are applied after the sync.
    syncing: bool = True
    pending: list[Batch]
    pending_overflow: bool = False
    resync_requested: bool = False

    language: str = ""
    accepted: bool = False
    # The PBX status this socket's page shows (Tenant.status_payload()), and the link to the
    # worker as this socket last told its page.
    shown_status: dict[str, Any] | None = None
    link: Link | None = None
    # The login session the socket was opened with: its key stays in this process, messages
    # name it by digest (live.sessions). It is checked again when it is due to expire.
    session_key: str = ""
    session_id: str = ""
    session_timer: asyncio.TimerHandle | None = None
    ended: bool = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pending = []

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Everything this socket renders speaks the page's language, like the page itself.
        if not self.language:
            self.language = _language_of(self.scope)
        with translation.override(self.language):
            await super().dispatch(message)

    async def connect(self) -> None:
        user = self.scope.get("user")
        session = self.scope.get("session")
        if user is None or not user.is_authenticated or session is None or not session.session_key:
            await self.close(code=CLOSE_NOT_ALLOWED)
            return
        self.session_key = session.session_key
        self.session_id = digest(self.session_key)
        account = self.scope["url_route"]["kwargs"]["account"]
        membership = await database_sync_to_async(membership_for)(user, account)
        if membership is None:
            await self.close(code=CLOSE_NOT_ALLOWED)
            return
        query = QueryDict(self.scope.get("query_string", b"").decode("latin-1"))
        self.view = BoardView.from_query(query)
        self.writer = writer_for(self.scope, self.base_send)
        # The tenant's batches through the process's one subscription (fanout), the user's
        # own events (rights, favourites, call progress) through this socket's channel.
        self.tenant_id = membership.tenant_id
        self.tenant = membership.tenant
        await fanout().subscribe(membership.tenant_id, self)
        self.groups_joined = (user_group(user.pk),)
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        self.accepted = True
        # Whatever happened since the page was rendered (or the socket was away): what
        # changed since, or the whole current state if more than tiles changed.
        await self.send_everything(PageGrid.from_query(query))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        except Exception as exc:
            # The channel layer failed (Redis down): a close the page can explain and retry,
            # instead of an HTTP 500 for the handshake or a bare 1011.
            if not is_connection_error(exc):
                raise
            layer_outage.failed(exc)
            if not self.accepted:
                await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": CLOSE_UNAVAILABLE})
        finally:
            # However the consumer ends (a handler that raised, a cancelled application
            # instance), the fan-out must not keep it.
            self._leave_fanout()

    def _leave_fanout(self) -> None:
        self.ended = True
        if self.session_timer is not None:
            self.session_timer.cancel()
            self.session_timer = None
        if self.tenant_id is not None:
            fanout().unsubscribe(self.tenant_id, self)
            self.tenant_id = None
        if self.writer is not None:
            self.writer.close()
        self.pending = []

    async def disconnect(self, code: int) -> None:
        self._leave_fanout()
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    def emit(self, text: str) -> None:
        """Send ``text`` after everything this socket sent before (batches included)."""
        if self.writer is not None:
            self.writer.write(Frame(text))

    async def close_now(self, code: int) -> None:
        if self.ended:
            return
        if self.writer is not None:
            await self.writer.flush()
        self._leave_fanout()
        await self.close(code=code)

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
    def _load(self, page: PageGrid | None, link: Link) -> Sync | None:
        # Fresh from the database: the user may have been deactivated since the socket opened,
        # or his session ended before this socket joined his group.
        login = session_login(self.session_key)
        if login is None or login.user.pk != self.scope["user"].pk:
            return None
        user = login.user
        membership = membership_for(user, self.scope["url_route"]["kwargs"]["account"])
        if membership is None:
            return None
        rows = Extension.objects.filter(tenant=membership.tenant).values_list("pk", "active", "seq")
        known = {pk: active for pk, active, _ in rows}
        # One writer per tenant commits its batches in order: every batch up to the newest
        # sequence number read here is in this state already (the tenant's counter was read
        # before the rows, and may be older than they are).
        seq = max([membership.tenant.event_seq, *(seq for _, _, seq in rows)])
        grid = build_grid(user, membership, self.view)
        viewer = grid.viewer
        own = next((tile for tile in grid.tiles() if tile.mine), None)
        ring = ring_of(own.ext, viewer, own.contact) if own is not None else None
        # The PBX status last: it ends every sync, however many messages it takes.
        tail = [
            render_incoming_oob(ring),
            render_link_oob(link.live, link.since, translation.get_language()),
            render_status_oob(viewer.tenant),
        ]
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
            # Loaded after subscribing to the tenant: nothing newer than this can be missed.
            seq=seq,
            known=shared_ids(known),
            inactive=shared_ids(pk for pk, active in known.items() if not active),
            visible=shared_ids(tile.ext.pk for tile in grid.tiles()),
            ring=ring,
            session_expires=login.expires,
        )

    async def send_everything(self, page: PageGrid | None = None) -> None:
        self.syncing = True
        link = fanout().link(self.tenant_id) if self.tenant_id is not None else Link(live=None)
        sync = await self._load(page, link)
        if sync is None:
            # Membership revoked or session ended while connected.
            await self.close_now(CLOSE_NOT_ALLOWED)
            return
        self._watch_session(sync.session_expires)
        self.viewer = sync.viewer
        self.seq = sync.seq
        self.known = sync.known
        self.inactive = sync.inactive
        self.visible = sync.visible
        self.ring = sync.ring
        self.audience = Audience.of(
            sync.viewer,
            known=sync.known,
            inactive=sync.inactive,
            visible=sync.visible,
            language=self.language or translation.get_language(),
        )
        for message in sync.messages:
            self.emit(message)
        self.shown_status = sync.viewer.tenant.status_payload()
        self.link = link
        # A pulse (or its absence) during the load changed the link after the sync rendered
        # it, and on_link kept quiet meanwhile: the page would wait for a change that came.
        current = fanout().link(self.tenant_id) if self.tenant_id is not None else link
        if current != link:
            self.link = current
            self.emit(render_link_oob(current.live, current.since, self.language))
        pending, overflow = self.pending, self.pending_overflow
        self.pending, self.pending_overflow = [], False
        self.syncing = False
        if overflow:
            self.request_resync()
            return
        for batch in pending:
            self.on_batch(batch)

    # --- the tenant's batches, from the process's fan-out ---------------------------------

    def on_batch(self, batch: Batch) -> None:
        """The hot path: called for every socket of the tenant with every batch, without a
        task switch; sockets of one audience share the batch's frames."""
        if self.syncing:
            if len(self.pending) < MAX_PENDING:
                self.pending.append(batch)
            else:
                self.pending_overflow = True
            return
        viewer, audience = self.viewer, self.audience
        if viewer is None or audience is None or batch.last <= self.seq:
            return  # already part of the state this socket sent
        # One writer per tenant stamps consecutive numbers and publishes them in order, so a
        # gap means this socket missed a message (e.g. the channel layer reconnected).
        if batch.first > self.seq + 1:
            self.request_resync()
            return
        if batch.first <= self.seq:
            # The first batch after a sync: only what the sync could not have seen.
            seq = self.seq
            frames = changes_for(
                [e for e in batch.extensions if e.seq > seq], batch, audience, viewer
            )
        else:
            frames = frames_for(batch, audience, viewer)
        if frames is RESYNC:
            self.request_resync()
            return
        assert isinstance(frames, tuple)
        self.seq = batch.last
        own_id = viewer.own_extension_id
        if own_id is not None and own_id in batch.ids and own_id in self.visible:
            frames = self._with_ring(batch, own_id, frames)
        writer = self.writer
        if writer is not None:
            for frame in frames:
                writer.write(frame)

    def on_pulse(self, seq: int, status: dict[str, Any]) -> None:
        """The worker's pulse, in order with the batches (fanout): a socket behind it lost a
        batch and sends the whole grid again; a status it did not hear of is shown now."""
        if self.syncing or self.viewer is None:
            return
        if seq > self.seq:
            self.request_resync()
            return
        if status != self.shown_status:
            self.on_status(status)

    def on_status(self, status: dict[str, Any]) -> None:
        """The tenant's PBX status changed (from the fan-out, in order with the batches)."""
        if self.tenant is None:
            return
        self.shown_status = status
        self.emit(render_pushed_status(self.tenant, status, self.language))

    def on_link(self, link: Link) -> None:
        """The link to the worker broke or is back: the page marks its tiles stale or live."""
        if link == self.link or self.syncing:
            return  # a sync renders the link as it is when the sync ends
        self.link = link
        self.emit(render_link_oob(link.live, link.since, self.language))

    def on_calls(self, events: list[dict[str, Any]]) -> None:
        """Tiles show calls through the extensions' batches; raw call events are the gateway's."""

    def _with_ring(self, batch: Batch, own_id: int, frames: tuple[Frame, ...]) -> tuple[Frame, ...]:
        viewer = self.viewer
        assert viewer is not None
        own = next(e for e in reversed(batch.extensions) if e.pk == own_id)
        ring = ring_of(own, viewer, partner_of(batch, own.pk, viewer, self.visible))
        if ring == self.ring:
            return frames
        self.ring = ring
        key = ("banner", frames, ring, self.language)
        shared = batch.renders.get(key)
        if shared is None:
            with translation.override(self.language or None):
                banner = render_incoming_oob(ring)
            last = frames[-1].text if frames else ""
            shared = (*frames[:-1], *(Frame(text) for text in pack([last, banner]) if text))
            batch.renders[key] = shared
        return shared

    def request_resync(self) -> None:
        """Send the whole grid again, from this socket's own task (in order with its other
        handlers); batches meanwhile wait."""
        self.syncing = True
        if self.resync_requested:
            return
        self.resync_requested = True
        task = asyncio.get_running_loop().create_task(
            self.channel_layer.send(self.channel_name, {"type": "board.resync"})
        )
        _background.add(task)
        task.add_done_callback(_background.discard)

    # --- the login session ------------------------------------------------------------------

    def _watch_session(self, expires: datetime) -> None:
        """Check the session again when it is due to expire (it may have been extended)."""
        if self.ended:
            return
        if self.session_timer is not None:
            self.session_timer.cancel()
        delay = max(0.0, (expires - timezone.now()).total_seconds())
        self.session_timer = asyncio.get_running_loop().call_later(delay, self._session_due)

    def _session_due(self) -> None:
        self.session_timer = None
        task = asyncio.get_running_loop().create_task(self._check_session())
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def _check_session(self) -> None:
        login = await database_sync_to_async(session_login)(self.session_key)
        if login is None or login.user.pk != self.scope["user"].pk:
            await self.close_now(CLOSE_NOT_ALLOWED)
        else:
            self._watch_session(login.expires)

    async def session_ended(self, event: dict[str, Any]) -> None:
        if event["session"] == self.session_id:
            await self.close_now(CLOSE_NOT_ALLOWED)

    async def sessions_ended(self, event: dict[str, Any]) -> None:
        if self.session_id not in event["keep"]:
            await self.close_now(CLOSE_NOT_ALLOWED)

    async def session_replaced(self, event: dict[str, Any]) -> None:
        if event["session"] == self.session_id:
            self.session_key = unseal(event["key"])
            self.session_id = digest(self.session_key)
            await self._check_session()

    # --- channel layer events, one handler each -------------------------------------------

    async def board_resync(self, event: dict[str, Any]) -> None:
        self.resync_requested = False
        await self.send_everything()

    async def tenant_status(self, event: dict[str, Any]) -> None:
        if self.tenant is not None and event["tenant_id"] == self.tenant.pk:
            self.on_status(event["status"])

    async def visibility_changed(self, event: dict[str, Any]) -> None:
        await self.send_everything()

    async def favourites_changed(self, event: dict[str, Any]) -> None:
        await self.send_everything()

    async def call_progress(self, event: dict[str, Any]) -> None:
        if self.viewer is None or event["tenant_id"] != self.viewer.tenant.pk:
            return
        attempt = CallAttempt.from_payload(
            self.viewer.tenant.pk, self.viewer.user_id, event["attempt"]
        )
        # A colleague's name is on his tile; a phonebook name is a call detail.
        shown = self.viewer.details or attempt.callee_context != "global"
        partner_name = event["partner_name"] if shown else ""
        self.emit(render_call_oob(attempt, self.viewer.tenant, partner_name))
