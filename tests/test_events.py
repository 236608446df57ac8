"""Pushes leave without holding up the caller, yet in the order they were made (real Redis)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import channel_layers

from reviewdesk import events

pytestmark = pytest.mark.usefixtures("channel_layer")


def test_batches_arrive_in_the_order_they_were_made() -> None:
    """A row's "pending" and then its "answered" must never swap on a queue page."""
    layer = channel_layers.make_backend("default")  # a listener of its own, on this loop
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)("order.test", channel)

    for n in range(40):
        events._send([("order.test", {"type": "desk.hint", "n": n})])
    events.flush()

    async def receive_all() -> list[int]:
        return [(await layer.receive(channel))["n"] for _ in range(40)]

    assert async_to_sync(receive_all)() == list(range(40))


def test_a_push_does_not_wait_for_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller (an answer's HTTP response) returns while its pushes are still on their way."""
    layer = events._push_layer()
    original = layer.group_send
    gate = threading.Event()
    sent: list[str] = []

    async def held_send(group: str, message: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(None, gate.wait, 10)
        sent.append(group)
        await original(group, message)

    monkeypatch.setattr(layer, "group_send", held_send)
    listener = channel_layers.make_backend("default")
    channel = async_to_sync(listener.new_channel)()
    async_to_sync(listener.group_add)("held.test", channel)

    events._send([("held.test", {"type": "desk.hint", "n": 1})])
    assert sent == []  # returned while the push was held (a blocking send would have waited)
    gate.set()
    events.flush()
    assert sent == ["held.test"]
    assert async_to_sync(listener.receive)(channel)["n"] == 1
