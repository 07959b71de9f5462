#!/usr/bin/env python
"""
The floor under any web terminal's echo: one WebSocket round trip through uvicorn on this
machine, with nothing behind it (a bare ASGI app that sends each frame back). A web terminal's
keystroke echo is at least this plus the SSH round trip (bench/peers.py: direct SSH).
Then the same echo through a Channels consumer (Redis channel layer, as baseliner runs), once
with Channels' stock message loop and once with baseliner's ``DirectDispatchConsumer`` (what the
terminal socket uses): the cost the consumer framework adds to every keystroke.

    .venv/bin/python bench/ws_floor.py [--keys 1000] [--rounds 2] [--ws websockets,websockets-sansio,wsproto] [--paths /,/direct]

Same server stack as baseliner (uvicorn with uvloop and httptools, its default WebSocket
implementation, one process) and the same client as the other benchmarks (``websockets``
on uvloop); a key is sent every 5 ms, as in peers.py's echo figure.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import ROOT, command_line, load, machine_facts, pct  # noqa: E402

sys.path.insert(0, str(ROOT))
from baseliner.devtools.processes import ListeningProcess, free_port  # noqa: E402

ECHO_APP = '''
async def app(scope, receive, send):
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        m = await receive()
        if m["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "bytes": m.get("bytes") or (m.get("text") or "").encode()})
'''

CHANNELS_APP = '''
import os
import django
from django.conf import settings

settings.configure(CHANNEL_LAYERS={"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                               "CONFIG": {"hosts": [{"address": os.environ["BENCH_REDIS_URL"], "socket_timeout": 30,
                                                                     "socket_connect_timeout": 5}]}}})  # as baseliner/settings.py
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer
from baseliner.workspace.dispatch import DirectDispatchConsumer


class Stock(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        await self.send(bytes_data=bytes_data)


class StockNoDbClose(Stock):
    # Channels' loop with a dispatch that skips close_old_connections (baseliner's terminal
    # consumer before DirectDispatchConsumer)
    async def dispatch(self, message):
        await getattr(self, message["type"].replace(".", "_"))(message)


class Direct(DirectDispatchConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        await self.send(bytes_data=bytes_data)


APPS = {"/stock": Stock.as_asgi(), "/stock-nodb": StockNoDbClose.as_asgi(), "/direct": Direct.as_asgi()}


async def app(scope, receive, send):
    if scope["type"] == "websocket":
        await APPS[scope["path"]](scope, receive, send)
'''

ROWS = [("echo_app", "/", "WebSocket round trip through uvicorn, nothing behind it"),
        ("channels_app", "/stock", "... through a Channels consumer, Channels' stock message loop"),
        ("channels_app", "/stock-nodb", "... Channels' stock loop, dispatch without close_old_connections"),
        ("channels_app", "/direct", "... through a Channels consumer, baseliner's DirectDispatchConsumer")]


async def measure(port: int, path: str, keys: int) -> list[float]:
    import websockets

    # No permessage-deflate, as the other benchmarks' clients (BENCH_WS_DEFLATE=1: offer it, as Chromium does).
    compression = "deflate" if os.environ.get("BENCH_WS_DEFLATE") == "1" else None
    async with websockets.connect(f"ws://127.0.0.1:{port}{path}", compression=compression) as ws:
        for _ in range(50):  # warm up
            await ws.send(b"a")
            await ws.recv()
        rtts = []
        for _ in range(keys):
            t0 = time.perf_counter()
            await ws.send(b"a")
            await ws.recv()
            rtts.append(time.perf_counter() - t0)
            await asyncio.sleep(0.005)
    return rtts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keys", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=2, help="each row this many times, interleaved")
    p.add_argument("--ws", default="websockets-sansio", help="uvicorn's WebSocket implementations to compare, "
                   "comma-separated (websockets, websockets-sansio, wsproto; default: websockets-sansio, what uvicorn "
                   "0.54's auto picks, so what baseliner runs; wsproto is not in the app's requirements: pip install "
                   "wsproto first)")
    p.add_argument("--paths", default="", help="only these rows' paths, comma-separated (e.g. /,/direct)")
    args = p.parse_args()
    print("machine:", json.dumps(machine_facts()))
    print("command:", command_line())
    import uvloop

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "echo_app.py").write_text(ECHO_APP)
        Path(tmp, "channels_app.py").write_text(CHANNELS_APP)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")}
        rows = [r for r in ROWS if not args.paths or r[1] in args.paths.split(",")]
        impls = args.ws.split(",")
        for (module, path, label), ws_impl in [(row, impl) for _ in range(args.rounds) for row in rows for impl in impls]:
            port = free_port()
            server = ListeningProcess([sys.executable, "-m", "uvicorn", f"{module}:app", "--app-dir", tmp, "--host", "127.0.0.1",
                                       "--port", str(port), "--log-level", "warning", "--ws", ws_impl], port, Path(tmp, "log"),
                                      env=lambda: env)
            server.start()
            try:
                rtts = uvloop.run(measure(port, path, args.keys))
            except Exception:
                print(Path(tmp, "log").read_text()[-3000:])
                raise
            finally:
                server.stop()
            results.append((label, ws_impl, rtts, load()))
    print("| path | uvicorn --ws | echo p50 ms | echo p99 ms | load |")
    print("|---|---|---|---|---|")
    for label, ws_impl, rtts, at in results:
        print(f"| {label} | {ws_impl} | {pct(rtts, 50) * 1000:.3f} | {pct(rtts, 99) * 1000:.3f} | {at} |")

if __name__ == "__main__":
    main()
