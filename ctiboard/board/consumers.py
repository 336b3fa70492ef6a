"""The board's WebSocket: htmx out-of-band swaps of exactly the tiles this user may see."""

import logging
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.contrib.auth import get_user_model

from ctiboard.pbx.events import tenant_group, user_group
from ctiboard.pbx.models import CallAttempt, Extension, Tenant

from .rendering import render_call_oob, render_grid_oob, render_status_oob, render_tile_oob
from .viewer import Viewer, membership_for, visible_extensions

logger = logging.getLogger(__name__)

# Close codes of our own (4000-4999): the browser must not reconnect blindly after these.
CLOSE_NOT_ALLOWED = 4403


class BoardConsumer(AsyncWebsocketConsumer):
    viewer: Viewer | None = None
    visible: frozenset[int] = frozenset()
    groups_joined: tuple[str, ...] = ()

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
        self.groups_joined = (tenant_group(membership.tenant_id), user_group(user.pk))
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        # Whatever happened while this socket was away: the full current state replaces it.
        await self.send_everything()

    async def disconnect(self, code: int) -> None:
        for group in self.groups_joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        # The board never sends anything; a client that does gets nothing back.
        logger.debug("ignored %d bytes from a board socket", len(text_data or bytes_data or ""))

    @database_sync_to_async
    def _load(self) -> tuple[Viewer | None, list[Extension]]:
        # Fresh from the database: the user may have been deactivated since the socket opened.
        user = get_user_model().objects.filter(pk=self.scope["user"].pk).first()
        membership = membership_for(user, self.scope["url_route"]["kwargs"]["account"])
        if membership is None:
            return None, []
        return Viewer.of(membership), visible_extensions(user, membership.tenant)

    async def send_everything(self) -> None:
        viewer, extensions = await self._load()
        if viewer is None:
            # Membership revoked while connected.
            await self.close(code=CLOSE_NOT_ALLOWED)
            return
        self.viewer = viewer
        self.visible = frozenset(extension.pk for extension in extensions)
        await self.send(
            text_data=render_grid_oob(extensions, viewer) + render_status_oob(viewer.tenant)
        )

    # --- channel layer events, one handler each -------------------------------------------

    async def extensions_changed(self, event: dict[str, Any]) -> None:
        viewer = self.viewer
        if viewer is None:
            return
        parts = []
        added_or_removed = False
        for payload in event["extensions"]:
            if payload["id"] not in self.visible:
                continue
            extension = Extension.from_payload(payload)
            if not extension.active:
                added_or_removed = True
                continue
            parts.append(render_tile_oob(extension, viewer))
        if added_or_removed:
            await self.send_everything()
        elif parts:
            await self.send(text_data="".join(parts))

    async def tenant_status(self, event: dict[str, Any]) -> None:
        tenant = await Tenant.objects.filter(pk=event["tenant_id"]).afirst()
        if tenant is not None:
            await self.send(text_data=render_status_oob(tenant))

    async def visibility_changed(self, event: dict[str, Any]) -> None:
        await self.send_everything()

    async def call_progress(self, event: dict[str, Any]) -> None:
        if self.viewer is None:
            return
        attempt = await CallAttempt.objects.filter(
            pk=event["attempt_id"], user_id=self.viewer.user_id, tenant=self.viewer.tenant
        ).afirst()
        if attempt is not None:
            await self.send(text_data=render_call_oob(attempt, self.viewer.tenant.account))
