#!/usr/bin/env python
"""
The floor under any web terminal's echo: one WebSocket round trip through uvicorn on this
machine, with nothing behind it (a bare ASGI app that sends each frame back). A web terminal's
keystroke echo is at least this plus the SSH round trip (bench/peers.py: direct SSH).

    .venv/bin/python bench/ws_floor.py [--keys 1000]

Same server stack as baseliner (uvicorn with uvloop and httptools, its default WebSocket
implementation, one process) and the same client as the other benchmarks (``websockets``
on uvloop); a key is sent every 5 ms, as in peers.py's echo figure.
"""
from __future__ import annotations

import argparse
import asyncio
import json
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


async def measure(port: int, keys: int) -> list[float]:
    import websockets

    async with websockets.connect(f"ws://127.0.0.1:{port}/") as ws:
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
    args = p.parse_args()
    print("machine:", json.dumps(machine_facts()))
    print("command:", command_line())
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "echo_app.py").write_text(ECHO_APP)
        port = free_port()
        server = ListeningProcess([sys.executable, "-m", "uvicorn", "echo_app:app", "--app-dir", tmp, "--host", "127.0.0.1",
                                   "--port", str(port), "--log-level", "warning"], port, Path(tmp, "log"))
        server.start()
        try:
            import uvloop

            rtts = uvloop.run(measure(port, args.keys))
        finally:
            server.stop()
    print("| path | echo p50 ms | echo p99 ms | load |")
    print("|---|---|---|---|")
    print(f"| WebSocket round trip through uvicorn, nothing behind it | {pct(rtts, 50) * 1000:.2f} | {pct(rtts, 99) * 1000:.2f} | {load()} |")


if __name__ == "__main__":
    main()
