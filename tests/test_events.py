"""Live events reach every open page of the attempt, whatever thread the service runs on.

Each test body runs on a fresh thread: after a browser test, Playwright's sync API leaves an
event loop on the main thread, and the test must not depend on what ran before it."""
import asyncio
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from baseliner.web.events import _send, attempt_group


def on_fresh_thread(fn):
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn).result(timeout=60)


async def _receive_one(channel_name):
    return await asyncio.wait_for(get_channel_layer().receive(channel_name), timeout=20)


def _listen(attempt_id: int) -> str:
    layer = get_channel_layer()
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(attempt_group(attempt_id), channel)
    return channel


def test_an_event_is_delivered_to_the_attempt_group():
    def body():
        channel = _listen(991)
        _send(991, "score", {"sequence": 3})
        return async_to_sync(_receive_one)(channel)

    assert on_fresh_thread(body)["event"] == {"type": "score", "sequence": 3}


def test_an_event_sent_from_sync_code_inside_a_running_loop_is_still_delivered():
    """Sync services called on a thread that runs a loop (e.g. under Playwright's sync API)."""

    def body():
        channel = _listen(992)

        async def inside_a_loop():
            _send(992, "state", {"state": "running"})  # a sync call while this thread's loop runs
            return await _receive_one(channel)

        return asyncio.run(inside_a_loop())

    assert on_fresh_thread(body)["event"] == {"type": "state", "state": "running"}
