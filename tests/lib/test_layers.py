"""The demo's in-memory channel layer sweeps expired messages, but not on every call."""

import asyncio

import pytest

from ctiboard.lib.layers import SweepingInMemoryChannelLayer


async def test_a_burst_of_sends_sweeps_once(monkeypatch: pytest.MonkeyPatch) -> None:
    layer = SweepingInMemoryChannelLayer(sweep_interval=60)
    sweeps: list[int] = []
    monkeypatch.setattr(
        "channels.layers.InMemoryChannelLayer._clean_expired", lambda self: sweeps.append(1)
    )
    channels = [await layer.new_channel() for _ in range(20)]
    for channel in channels:
        await layer.group_add("tenant.1", channel)
    for _ in range(50):
        await layer.group_send("tenant.1", {"type": "extensions.changed"})
    for channel in channels:
        assert (await layer.receive(channel))["type"] == "extensions.changed"
    assert len(sweeps) == 1


async def test_expired_messages_are_still_not_delivered() -> None:
    layer = SweepingInMemoryChannelLayer(expiry=0, sweep_interval=0)
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "stale"})
    await asyncio.sleep(0.01)
    await layer.group_send("nobody", {"type": "other"})  # sweeps: the message expired
    assert layer.channels.get(channel) is None or layer.channels[channel].empty()
