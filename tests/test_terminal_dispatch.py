"""The terminal socket's message loop (baseliner/workspace/dispatch.py), on the real Redis
channel layer: frames in order, one handler at a time across the socket and the attempt's
group, a failing handler closes the socket, and a disconnect leaves no task behind."""
import asyncio

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from baseliner.workspace.dispatch import DirectDispatchConsumer

from .async_support import async_test

GROUP = "dispatch-test"


class Probe(DirectDispatchConsumer):
    """Echoes frames; the text frame ``hold`` keeps its handler busy for half a second."""

    log: list | None = None  # what the handlers did, in order

    async def connect(self):
        await self.channel_layer.group_add(GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        if text_data == "hold":
            self.log.append("hold:start")
            await asyncio.sleep(0.5)  # a group event arrives meanwhile and must wait
            self.log.append("hold:end")
            return await self.send(text_data="held")
        await self.send(bytes_data=bytes_data)

    async def probe_event(self, message):
        if message.get("fail"):
            raise RuntimeError("handler failed")
        self.log.append("event")
        await self.send(text_data="event")


def _app(log):
    return type("LoggingProbe", (Probe,), {"log": log}).as_asgi()


async def _connected(log):
    comm = WebsocketCommunicator(_app(log), "/ws/test/")
    connected, _ = await comm.connect(timeout=10)
    assert connected
    return comm


async def _ended_with(comm) -> BaseException | None:
    """The error the application ended with (the server logs it and closes the socket)."""
    await asyncio.wait([comm.future], timeout=10)
    assert comm.future.done(), "the consumer is still running"
    return comm.future.exception()


@pytest.mark.django_db(transaction=True)
@async_test
async def test_frames_come_back_in_the_order_they_were_sent():
    comm = await _connected([])
    for i in range(300):
        await comm.send_to(bytes_data=i.to_bytes(2, "big"))
    got = [int.from_bytes(await comm.receive_from(timeout=10), "big") for _ in range(300)]
    assert got == list(range(300))
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
@async_test
async def test_a_group_event_waits_for_the_frame_being_handled_and_then_is_delivered():
    log = []
    comm = await _connected(log)
    await comm.send_to(text_data="hold")
    await asyncio.sleep(0.1)  # the frame's handler is running
    await get_channel_layer().group_send(GROUP, {"type": "probe.event"})
    assert await comm.receive_from(timeout=10) == "held"
    assert await comm.receive_from(timeout=10) == "event"
    assert log == ["hold:start", "hold:end", "event"]
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
@async_test
async def test_a_failing_event_handler_takes_the_consumer_down_with_its_error():
    comm = await _connected([])
    await get_channel_layer().group_send(GROUP, {"type": "probe.event", "fail": True})
    assert isinstance(await _ended_with(comm), RuntimeError)


@pytest.mark.django_db(transaction=True)
@async_test
async def test_an_unknown_message_type_is_an_error_not_a_silent_drop():
    comm = await _connected([])
    await get_channel_layer().group_send(GROUP, {"type": "no.such.handler"})
    error = await _ended_with(comm)
    assert isinstance(error, ValueError) and "No handler for message type no.such.handler" in str(error)


@pytest.mark.django_db(transaction=True)
@async_test
async def test_a_disconnect_ends_the_consumer_and_its_channel_layer_reader():
    log = []
    comm = await _connected(log)
    await comm.send_to(bytes_data=b"x")
    assert await comm.receive_from(timeout=10) == b"x"
    await comm.disconnect(timeout=10)
    assert comm.future.done() and comm.future.exception() is None
    await asyncio.sleep(0)
    left = [t for t in asyncio.all_tasks() if "_serve" in repr(t.get_coro())]
    assert left == []
    # The group no longer reaches it: nothing is logged for an event sent afterwards.
    await get_channel_layer().group_send(GROUP, {"type": "probe.event"})
    await asyncio.sleep(0.3)
    assert log == []
