"""
A WebSocket consumer that hands each frame to its handler with no hop in between.

Channels' stock loop (``AsyncConsumer.__call__`` -> ``await_many_dispatch``) serves the socket
and the channel layer by building ``asyncio.wait`` over two tasks for *every* message and then a
new task for the next receive, and its ``dispatch`` runs ``close_old_connections`` through
``sync_to_async`` first: for a terminal that is a round trip to the process's one shared sync
thread, two extra turns of the event loop and a task per keystroke and per ack.

``DirectDispatchConsumer`` keeps what that loop promises and drops the per-message cost:
- one long-lived task reads the socket and one the channel layer, each awaiting its own
  ``receive()`` directly;
- handlers still run one at a time, in arrival order per source (a lock, uncontended almost
  always), so a group event never interleaves with a frame's handler or with ``connect``;
- ``StopConsumer`` (the disconnect handler's) from either source ends the consumer, and any
  other exception propagates out of the application as it would from Channels' loop (the
  server logs it and closes the socket), after the other task is cancelled;
- handlers must do their own database work through ``offload.db`` (which closes stale
  connections in its own thread): no ``close_old_connections`` runs per message.
"""
from __future__ import annotations

import asyncio
import functools

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer


class DirectDispatchConsumer(AsyncWebsocketConsumer):
    async def __call__(self, scope, receive, send):
        self.scope = scope
        self.base_send = send
        self._dispatch_lock = asyncio.Lock()
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        sources = [receive]
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
            self.channel_receive = functools.partial(self.channel_layer.receive, self.channel_name)
            sources.append(self.channel_receive)
        tasks = [asyncio.ensure_future(self._serve(source)) for source in sources]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
        for task, result in zip(tasks, results):
            if task in done and isinstance(result, BaseException) and not isinstance(result, StopConsumer):
                raise result

    async def _serve(self, receive) -> None:
        while True:
            message = await receive()
            async with self._dispatch_lock:
                await self.dispatch(message)

    async def dispatch(self, message):
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)
