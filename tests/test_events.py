"""Live events reach every open page of the attempt, whatever thread the service runs on."""
import asyncio

import pytest
from channels.layers import get_channel_layer

from baseliner.web.events import _send, attempt_group


async def _receive_one(channel_name):
    layer = get_channel_layer()
    return await asyncio.wait_for(layer.receive(channel_name), timeout=5)


def test_an_event_is_delivered_to_the_attempt_group():
    from asgiref.sync import async_to_sync

    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(attempt_group(991), channel)
    _send(991, "score", {"sequence": 3})
    message = async_to_sync(_receive_one)(channel)
    assert message["event"] == {"type": "score", "sequence": 3}


def test_an_event_sent_from_sync_code_inside_a_running_loop_is_still_delivered():
    """Sync services called on a thread that runs a loop (e.g. under Playwright's sync API)."""
    from asgiref.sync import async_to_sync

    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(attempt_group(992), channel)

    async def inside_a_loop():
        _send(992, "state", {"state": "running"})  # sync call, loop running on this thread
        return await _receive_one(channel)

    message = asyncio.run(inside_a_loop())
    assert message["event"] == {"type": "state", "state": "running"}
