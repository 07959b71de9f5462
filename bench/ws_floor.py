#!/usr/bin/env python
"""
The floor under any web terminal's echo: one WebSocket round trip through the ASGI server on
this machine, with nothing behind it (a bare ASGI app that sends each frame back). A web
terminal's keystroke echo is at least this plus the SSH round trip (bench/peers.py: direct SSH).
Then the same echo through a Channels consumer (Redis channel layer, as baseliner runs), once
with Channels' stock message loop and once with baseliner's ``DirectDispatchConsumer`` (what the
terminal socket uses): the cost the consumer framework adds to every keystroke.

    .venv/bin/python bench/ws_floor.py [--keys 1000] [--rounds 2] [--ws websockets,websockets-sansio,wsproto] [--paths /,/direct]
                                       [--servers uvicorn,granian,hypercorn,daphne] [--stream-mb 100]

Same server stack as baseliner (uvicorn with uvloop and httptools, its default WebSocket
implementation, one process) and the same client as the other benchmarks (``websockets``
on uvloop); a key is sent every 5 ms, as in peers.py's echo figure. Each row also gives the
server's CPU per round trip (all its processes, user + system), and, for the bare app and
``DirectDispatchConsumer``, a stream: the server sends ``--stream-mb`` MB in 16 KB binary
frames as fast as the client reads them (MB/s, and the server's CPU seconds per MB).

``--servers`` compares ASGI servers under the same app and client (is the ASGI server the
limit?): uvicorn (what baseliner runs), granian 2.8.7 (Rust, its own event loop thread and a
uvloop for the app), hypercorn 0.18.0 (uvloop worker, wsproto) and daphne 4.2.3 (Twisted,
autobahn); ``BENCH_GRANIAN_ARGS`` adds options to granian's command line (e.g. ``--runtime-mode st``).
granian and hypercorn come from bench/setup_peers.sh (``.envs/asgi``), never the
app's requirements; daphne is in the app's venv (Channels' live-server tests).
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

from _harness import ROOT, command_line, cpu_seconds, load, machine_facts, pct  # noqa: E402

ASGI_DIR = ROOT / ".envs" / "asgi"  # bench/setup_peers.sh: granian and hypercorn, never the app's
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
        data = m.get("bytes") or (m.get("text") or "").encode()
        if data.startswith(b"STREAM "):
            frame = b"x" * 16384
            for _ in range(int(data.split()[1])):
                await send({"type": "websocket.send", "bytes": frame})
            data = b"END"
        await send({"type": "websocket.send", "bytes": data})
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
        if bytes_data.startswith(b"STREAM "):
            frame = b"x" * 16384
            for _ in range(int(bytes_data.split()[1])):
                await self.send(bytes_data=frame)
            bytes_data = b"END"
        await self.send(bytes_data=bytes_data)


APPS = {"/stock": Stock.as_asgi(), "/stock-nodb": StockNoDbClose.as_asgi(), "/direct": Direct.as_asgi()}


async def app(scope, receive, send):
    if scope["type"] == "websocket":
        await APPS[scope["path"]](scope, receive, send)
'''

ROWS = [("echo_app", "/", "WebSocket round trip through the ASGI server, nothing behind it"),
        ("channels_app", "/stock", "... through a Channels consumer, Channels' stock message loop"),
        ("channels_app", "/stock-nodb", "... Channels' stock loop, dispatch without close_old_connections"),
        ("channels_app", "/direct", "... through a Channels consumer, baseliner's DirectDispatchConsumer")]


STREAM_PATHS = ("/", "/direct")
FRAME = 16384


def server_command(server: str, module: str, port: int, ws_impl: str) -> list[str]:
    app = f"{module}:app"
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
                "--log-level", "warning", "--ws", ws_impl]
    if server == "granian":  # one worker; "asginl": the apps here answer no lifespan
        return [sys.executable, "-m", "granian", "--interface", "asginl", "--host", "127.0.0.1", "--port", str(port),
                "--workers", "1", "--loop", "uvloop", "--log-level", "warning", "--no-access-log",
                *os.environ.get("BENCH_GRANIAN_ARGS", "").split(), app]
    if server == "hypercorn":
        return [sys.executable, "-m", "hypercorn", "--bind", f"127.0.0.1:{port}", "--worker-class", "uvloop",
                "--workers", "1", "--log-level", "warning", app]
    if server == "daphne":
        return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "-v", "0", app]
    raise SystemExit(f"unknown server {server!r}")


async def measure(port: int, path: str, keys: int, server_pid: int, stream_mb: int) -> dict:
    import websockets

    # No permessage-deflate, as the other benchmarks' clients (BENCH_WS_DEFLATE=1: offer it, as Chromium does).
    compression = "deflate" if os.environ.get("BENCH_WS_DEFLATE") == "1" else None
    async with websockets.connect(f"ws://127.0.0.1:{port}{path}", compression=compression) as ws:
        for _ in range(50):  # warm up
            await ws.send(b"a")
            await ws.recv()
        rtts = []
        cpu0 = cpu_seconds([server_pid])
        for _ in range(keys):
            t0 = time.perf_counter()
            await ws.send(b"a")
            await ws.recv()
            rtts.append(time.perf_counter() - t0)
            await asyncio.sleep(0.005)
        out = {"rtts": rtts, "cpu_us_per_rtt": (cpu_seconds([server_pid]) - cpu0) / keys * 1e6}
        if stream_mb and path in STREAM_PATHS:
            frames = stream_mb * 1_000_000 // FRAME
            cpu0, t0, got = cpu_seconds([server_pid]), time.perf_counter(), 0
            await ws.send(f"STREAM {frames}".encode())
            while (data := await ws.recv()) != b"END":
                got += len(data)
            elapsed = time.perf_counter() - t0
            if got != frames * FRAME:
                raise RuntimeError(f"stream: {got} bytes of {frames * FRAME}")
            out["stream_MBps"] = got / 1e6 / elapsed
            out["stream_cpu_s_per_MB"] = (cpu_seconds([server_pid]) - cpu0) / (got / 1e6)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--keys", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=2, help="each row this many times, interleaved")
    p.add_argument("--ws", default="websockets-sansio", help="uvicorn's WebSocket implementations to compare, "
                   "comma-separated (websockets, websockets-sansio, wsproto; default: websockets-sansio, what uvicorn "
                   "0.54's auto picks, so what baseliner runs; wsproto is not in the app's requirements: pip install "
                   "wsproto first)")
    p.add_argument("--paths", default="", help="only these rows' paths, comma-separated (e.g. /,/direct)")
    p.add_argument("--servers", default="uvicorn", help="ASGI servers to compare, comma-separated: uvicorn, granian, "
                   "hypercorn, daphne (granian and hypercorn: bench/setup_peers.sh first)")
    p.add_argument("--stream-mb", type=int, default=100, help="MB streamed server -> client per row (0: skip)")
    args = p.parse_args()
    print("machine:", json.dumps(machine_facts()))
    print("command:", command_line())
    import uvloop

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "echo_app.py").write_text(ECHO_APP)
        Path(tmp, "channels_app.py").write_text(CHANNELS_APP)
        # The other servers (granian, hypercorn) are on the path after the app's own packages.
        path_env = os.pathsep.join([tmp, str(ROOT), str(ASGI_DIR)])
        env = {**os.environ, "PYTHONPATH": path_env, "BENCH_REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")}
        rows = [r for r in ROWS if not args.paths or r[1] in args.paths.split(",")]
        variants = [(server, impl) for server in args.servers.split(",")
                    for impl in (args.ws.split(",") if server == "uvicorn" else ["-"])]
        for (module, path, label), (server_name, ws_impl) in [(row, v) for _ in range(args.rounds) for row in rows
                                                             for v in variants]:
            port = free_port()
            server = ListeningProcess(server_command(server_name, module, port, ws_impl), port, Path(tmp, "log"),
                                      env=lambda: env, cwd=Path(tmp))
            server.start()
            try:
                out = uvloop.run(measure(port, path, args.keys, server.proc.pid, args.stream_mb))
            except Exception:
                print(Path(tmp, "log").read_text()[-3000:])
                raise
            finally:
                server.stop()
            results.append((label, server_name, ws_impl, out, load()))
    print("| path | server | uvicorn --ws | echo p50 ms | echo p99 ms | server CPU us per round trip | stream MB/s | "
          "server CPU s/MB | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, server_name, ws_impl, out, at in results:
        rtts = out["rtts"]
        stream = (f"{out['stream_MBps']:.1f} | {out['stream_cpu_s_per_MB']:.4f}" if "stream_MBps" in out else "- | -")
        print(f"| {label} | {server_name} | {ws_impl} | {pct(rtts, 50) * 1000:.3f} | {pct(rtts, 99) * 1000:.3f} | "
              f"{out['cpu_us_per_rtt']:.0f} | {stream} | {at} |")

if __name__ == "__main__":
    main()
