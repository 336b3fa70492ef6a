"""The link from a web process to the tenant's worker, through the real consumer: the worker's
pulse keeps a board live; no pulse for PULSE_TIMEOUT marks it stale (the worker died or the
channel layer is down); the pulse after a silence, or after a lost batch, repairs it."""

import asyncio
import re
import time
from datetime import datetime

import pytest
from channels.layers import get_channel_layer
from django.contrib.auth.models import User

from ctiboard.board.consumers import BoardConsumer
from ctiboard.live import fanout as fanout_module
from ctiboard.live import publish
from ctiboard.live.fanout import Link, fanout
from ctiboard.tenancy.models import Tenant
from tests.board.support import apply, open_socket, receive_sync, state, tile_ids
from tests.conftest import Company

pytestmark = pytest.mark.django_db(transaction=True)

LINK = re.compile(r'<span id="link-status"[^>]*data-live="([01]?)"[^>]*data-since="([^"]*)"')


async def _pulse(
    company: Company, seq: int, status: str = "connected", held_since: float | None = None
) -> None:
    tenant = await Tenant.objects.aget(pk=company.tenant.pk)
    payload = {**tenant.status_payload(), "connection_status": status}
    await publish.tenant_pulse(company.tenant.pk, seq, payload, held_since=held_since)


async def _link(socket: object, timeout: float = 6.0) -> tuple[str, str]:
    """The next link state the socket tells its page (skipping anything else)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        message = await socket.receive_from(timeout=max(0.01, deadline - loop.time()))  # type: ignore[attr-defined]
        found = LINK.search(message)
        if found:
            return found[1], found[2]


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    # A short timeout keeps the test short; the logic is the same at 3 s.
    monkeypatch.setattr(fanout_module, "PULSE_TIMEOUT", 0.6)


async def test_no_pulse_marks_the_board_stale_and_a_pulse_makes_it_live_again(
    owner: User, company: Company
) -> None:
    socket = await open_socket(owner, company)
    sync = await receive_sync(socket)
    assert LINK.search("".join(sync))[1] == ""  # no pulse yet: waiting, not broken

    await _pulse(company, 0)
    assert await _link(socket) == ("1", "")

    # The worker falls silent: within the timeout the page learns since when.
    live, since = await _link(socket)
    assert live == "0" and since

    await _pulse(company, 0)
    assert (await _link(socket))[0] == "1"
    assert fanout().link(company.tenant.pk).live
    await socket.disconnect()


async def test_a_worker_holding_changes_it_cannot_store_makes_the_board_stale_at_once(
    owner: User, company: Company
) -> None:
    socket = await open_socket(owner, company)
    await receive_sync(socket)
    await _pulse(company, 0)
    assert await _link(socket) == ("1", "")

    # The worker's database is away: it still pulses, and says since when it is behind.
    held = time.time() - 1.5
    await _pulse(company, 0, held_since=held)
    live, since = await _link(socket, timeout=0.5)  # at once, not after the pulse timeout
    assert live == "0"
    assert datetime.fromisoformat(since).timestamp() == pytest.approx(held, abs=1)

    await _pulse(company, 0)
    assert (await _link(socket))[0] == "1"
    await socket.disconnect()


async def test_a_pulse_ahead_of_the_socket_brings_the_lost_batch(
    owner: User, company: Company
) -> None:
    socket = await open_socket(owner, company)
    await receive_sync(socket)
    layer = get_channel_layer()
    # A batch is stored but its message never arrives (the channel layer lost it).
    real_send = layer.group_send

    async def lose(group: str, message: dict) -> None:  # type: ignore[type-arg]
        if message.get("type") != "extensions.changed":
            await real_send(group, message)

    layer.group_send = lose  # type: ignore[method-assign]
    try:
        await apply(company, state("104", "ringing"))
    finally:
        layer.group_send = real_send  # type: ignore[method-assign]
    tenant = await Tenant.objects.aget(pk=company.tenant.pk)

    await _pulse(company, tenant.event_seq)

    # The socket saw it is behind and sends the grid again, with the ringing tile.
    messages = [await socket.receive_from(timeout=5)]
    while 'id="pbx-status"' not in messages[-1]:
        messages.append(await socket.receive_from(timeout=5))
    pushed = "".join(messages)
    ringing = company.extensions[4]
    assert f"ext-{ringing.pk}" in tile_ids(pushed)
    assert re.search(rf'<article id="ext-{ringing.pk}"[^>]*line-ringing', pushed)
    await socket.disconnect()


async def test_a_status_the_socket_missed_comes_with_the_pulse(
    owner: User, company: Company
) -> None:
    socket = await open_socket(owner, company)
    await receive_sync(socket)
    tenant = await Tenant.objects.aget(pk=company.tenant.pk)

    await _pulse(company, tenant.event_seq, status="reconnecting")

    status = ""
    while 'id="pbx-status"' not in status:
        status = await socket.receive_from(timeout=5)
    assert 'data-status="reconnecting"' in status
    await socket.disconnect()


async def test_a_pulse_during_the_sync_reaches_the_page(
    owner: User, company: Company, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first pulse lands while the socket loads its state (a busy database): the sync
    # renders "waiting", and the page must still learn it is live, not wait on.
    load = BoardConsumer.__dict__["_load"]  # database_sync_to_async binds like a method
    live = asyncio.Event()

    class Watch:
        channel_name = "watch"

        def on_link(self, link: Link) -> None:
            if link.live:
                live.set()

        def on_batch(self, batch: object) -> None: ...
        def on_pulse(self, seq: int, status: object) -> None: ...
        def on_status(self, status: object) -> None: ...
        def on_calls(self, events: object) -> None: ...

    async def pulse_midway(consumer: BoardConsumer, page: object, link: object) -> object:
        sync = await load.__get__(consumer, BoardConsumer)(page, link)
        await _pulse(company, 0)
        await asyncio.wait_for(live.wait(), timeout=5)
        return sync

    await fanout().subscribe(company.tenant.pk, Watch())

    monkeypatch.setattr(BoardConsumer, "_load", pulse_midway)
    socket = await open_socket(owner, company)
    shown = [m[0] for m in LINK.findall("".join(await receive_sync(socket)))]
    while not await socket.receive_nothing(timeout=0.5):
        shown += [m[0] for m in LINK.findall(await socket.receive_from())]
    assert shown[-1] == "1", shown  # what the page shows last: live
    await socket.disconnect()
