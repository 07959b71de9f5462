"""
Where the terminal's blocking work runs, off the event loop.

Two pools, sized for many experts connecting at once (a reconnect storm after a deploy):

- ``ssh``: paramiko's connect, handshake and channel setup block for tens of milliseconds,
  mostly waiting on the socket or in OpenSSL with the GIL released. asyncio's default
  executor has ``cores + 4`` threads (6 on a 2-core machine), which queued 200 connects six at
  a time; this pool lets them overlap.
- ``db``: the terminal's database calls (authorize, open/close a recording, log a command).
  Channels' default (``thread_sensitive=True``) runs every such call of the process on *one*
  shared thread, so 200 connects waited on each other's queries. None of these calls needs
  the request's thread: each is a short transaction of its own.

    machine, read_only = await db(authorize)(user=..., ...)
    client, chan = await in_ssh_pool(open_channel)
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from channels.db import database_sync_to_async

SSH_POOL = ThreadPoolExecutor(max_workers=64, thread_name_prefix="term-ssh")
DB_POOL = ThreadPoolExecutor(max_workers=12, thread_name_prefix="term-db")


def db(func):
    """``func`` as an awaitable run on the terminal's database pool (connections are
    closed when stale, as Channels does for every database call)."""
    return database_sync_to_async(func, thread_sensitive=False, executor=DB_POOL)


async def in_ssh_pool(func, *args):
    return await asyncio.get_running_loop().run_in_executor(SSH_POOL, func, *args)
