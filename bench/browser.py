"""
Rendered throughput in a real browser: `cat` of a big file in each contender's own page,
in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright, flags as in
tests/conftest.py), until xterm.js has processed and painted the line after it.

    sudo .venv/bin/python bench/browser.py [--targets webssh,baseliner] [--mb 50] [--runs 2] [--no-webgl]

How "shown" is detected without reading pixels: an init script wraps ``Terminal.prototype.write``
of the page's xterm.js; when a chunk containing the end marker is written, the time is taken
in the write callback (xterm has parsed it into its buffer) after the next two animation
frames (it has painted it). The start is the Enter key press, taken in the page too.
Also reported: keystroke echo as the page shows it (key press to painted character).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import BenchHost, WebsshServer, command_line, load, machine_facts, pct  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
# As in tests/conftest.py (CHROMIUM_ARGS).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]

# Installed before any page script: wraps xterm's Terminal.write wherever the page's Terminal
# class becomes reachable (webssh: window.Terminal; baseliner: window.baselinerXterm hook).
HOOK = r"""
(() => {
  const MARK = "DONE-DONE";
  window.__bench = {tail: "", done: null, wrote: 0, echo: null};
  const wrap = (proto) => {
    if (!proto || proto.__benchWrapped) return;
    const write = proto.write;
    proto.write = function (data, cb) {
      const text = typeof data === "string" ? data : new TextDecoder().decode(data);
      const b = window.__bench;
      b.wrote += text.length;
      const hay = b.tail + text;
      b.tail = hay.slice(-4096);
      let done = cb;
      if (b.done === null && b.t0 !== undefined && hay.includes(MARK)) {
        b.done = -1;
        done = () => { cb && cb(); requestAnimationFrame(() => requestAnimationFrame(() => { b.done = performance.now(); })); };
      } else if (b.echoWait && hay.includes(b.echoWait)) {
        const want = b.echoWait; b.echoWait = null;
        done = () => { cb && cb(); requestAnimationFrame(() => { b.echo = performance.now(); }); };
      }
      return write.call(this, data, done);
    };
    proto.__benchWrapped = true;
  };
  window.__benchWrap = wrap;
  let T;
  Object.defineProperty(window, "Terminal", {
    configurable: true,
    get() { return T; },
    set(v) { T = v; wrap(v && v.prototype); },
  });
})();
"""


# --no-webgl: the page finds no WebGL 2, as on a machine without one (xterm.js's DOM renderer).
NO_WEBGL = r"""
(() => {
  const getContext = HTMLCanvasElement.prototype.getContext;
  HTMLCanvasElement.prototype.getContext = function (kind, ...rest) {
    return kind === "webgl2" ? null : getContext.call(this, kind, ...rest);
  };
})();
"""


def webssh_open(page, server: WebsshServer, host: BenchHost) -> None:
    page.goto(f"http://127.0.0.1:{server.port}/")
    page.fill("#hostname", "127.0.0.1")
    page.fill("#port", str(host.sshd.port))
    page.fill("#username", host.users[0].name)
    page.set_input_files("#privatekey", files=[{"name": "id_ed25519", "mimeType": "text/plain",
                                                "buffer": host.key.encode()}])
    page.click("button[type=submit]")
    page.wait_for_function("() => window.__bench.tail.includes('bench$ ')", timeout=20_000)
    page.click(".xterm")


def baseliner_open(page, app, host: BenchHost) -> None:
    from _baseliner import page_open

    page_open(page, app)


def measure(page, big: Path, mb: int, runs: int) -> dict:
    out = {}
    rates = []
    for _ in range(runs):
        page.keyboard.type(f"clear; cat {big}; echo DONE-''DONE", delay=0)
        page.wait_for_timeout(300)
        page.evaluate("() => { window.__bench.done = null; window.__bench.tail = ''; window.__bench.t0 = performance.now(); }")
        page.keyboard.press("Enter")
        page.wait_for_function("() => window.__bench.done !== null && window.__bench.done > 0", timeout=600_000, polling=100)
        t = page.evaluate("() => window.__bench.done - window.__bench.t0") / 1000
        rates.append(mb / t)
        page.wait_for_timeout(500)
    out["rendered_MBps"] = statistics.median(rates)
    out["rendered_s"] = mb / out["rendered_MBps"]
    # echo as painted
    echoes = []
    for i in range(60):
        key = "qwrtyuiopasdfgjklzxv"[i % 20]
        page.evaluate("(k) => { window.__bench.echo = null; window.__bench.echoWait = k; window.__bench.k0 = performance.now(); }", key)
        page.keyboard.press(key)
        page.wait_for_function("() => window.__bench.echo !== null", timeout=10_000, polling="raf")
        echoes.append(page.evaluate("() => window.__bench.echo - window.__bench.k0") / 1000)
        if i % 30 == 29:
            page.keyboard.press("Control+U")
        page.wait_for_timeout(30)
    page.keyboard.press("Control+U")
    out["painted_echo_p50_ms"] = pct(echoes, 50) * 1000
    out["painted_echo_p99_ms"] = pct(echoes, 99) * 1000
    out["load"] = load()
    return out


def main(args) -> None:
    from playwright.sync_api import sync_playwright

    print("machine:", json.dumps(machine_facts()))
    print("command:", command_line())
    rows = []
    with BenchHost(n_users=1, big_mb=args.mb) as host, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        for key in args.targets.split(","):
            ctx = browser.new_context(viewport={"width": 1280, "height": 800})
            ctx.add_init_script(HOOK)
            if args.no_webgl:
                ctx.add_init_script(NO_WEBGL)
            page = ctx.new_page()
            page.set_default_timeout(30_000)
            row = {"target": key}
            try:
                if key == "webssh":
                    server = WebsshServer(host, host.dir)
                    server.start()
                    try:
                        row["target"] = "webssh 1.6.3"
                        webssh_open(page, server, host)
                        row.update(measure(page, host.big, args.mb, args.runs))
                    finally:
                        server.stop()
                elif key == "baseliner":
                    from _baseliner import BaselinerApp

                    app = BaselinerApp(host, n=1)
                    try:  # a server that fails to start still has its scratch database dropped
                        app.setup()
                        app.start()
                        baseliner_open(page, app, host)
                        row.update(measure(page, host.big, args.mb, args.runs))
                    finally:
                        app.cleanup()
            except Exception as exc:
                row["error"] = repr(exc)[:300]
            ctx.close()
            print(json.dumps(row), flush=True)
            rows.append(row)
        browser.close()
    print()
    print("| contender | rendered MB/s | cat s | painted echo p50 ms | p99 ms | load |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['target']} | error: {r['error']} |")
        else:
            print(f"| {r['target']} | {r['rendered_MBps']:.1f} | {r['rendered_s']:.2f} | {r['painted_echo_p50_ms']:.1f} | "
                  f"{r['painted_echo_p99_ms']:.1f} | {r['load']} |")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--targets", default="webssh,baseliner")
    p.add_argument("--mb", type=int, default=50)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--no-webgl", action="store_true", help="hide WebGL 2 from the pages (xterm.js's DOM renderer)")
    main(p.parse_args())
