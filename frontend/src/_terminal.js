// One terminal tab: xterm.js bound to /ws/attempts/<id>/terminals/<name>/ (a tmux session on
// the machine). Output arrives as binary frames and is written to xterm as bytes (so a UTF-8
// character split between frames is reassembled by xterm). Flow control as in xterm.js's
// guide: acknowledge rendered bytes after term.write's callback; the server stops reading the
// machine while too much is unacknowledged. Reconnects by itself unless the attempt ended:
// while the server is unreachable (restarting, network down: close code 1006) it retries
// every 1-2 s, so the terminal is back within about two seconds of the server; a server that
// refused with a reason (e.g. 4502, machine not answering) is retried with a growing backoff.
import { Terminal } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import { WebglAddon } from "@xterm/addon-webgl";
import "@xterm/xterm/css/xterm.css";
import { reconnectDelay } from "./_events.js";

const ACK_EVERY = 64 * 1024;
// Small leftovers are acknowledged lazily: the server only pauses at 1 MB unacknowledged, so
// a keystroke's echo needs no ack of its own (one less message per key for the server).
const ACK_IDLE_MS = 500;
const FINAL_CODES = new Set([4000, 4001, 4400, 4403, 4404]);

export class TerminalTab {
  constructor({ attemptId, name, container, readOnly, onStatus }) {
    this.attemptId = attemptId;
    this.name = name;
    this.readOnly = readOnly;
    this.takeover = false;
    this.onStatus = onStatus || (() => {});
    this.el = document.createElement("div");
    this.el.className = "term";
    this.el.dataset.terminal = name;
    container.appendChild(this.el);
    this.term = new Terminal({
      cursorBlink: true, scrollback: 5000, allowProposedApi: false,
      fontFamily: 'ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace', fontSize: 14,
      theme: { background: "#111827" },
      disableStdin: readOnly,
    });
    this.fit = new FitAddon();
    this.term.loadAddon(this.fit);
    this.term.open(this.el);
    this.tryWebgl();
    this.encoder = new TextEncoder();
    this.unacked = 0;
    this.ackTimer = null;
    this.delay = 500;
    this.lost = false; // the connection dropped and is not back yet
    this.stopped = false;
    this.exited = false;
    // Tab belongs to the shell (completion), so the keyboard would be trapped in here: F6
    // leaves the terminal for the next control on the page, Shift+F6 for the previous one.
    this.term.attachCustomKeyEventHandler((e) => {
      if (e.key !== "F6" || e.ctrlKey || e.altKey || e.metaKey) return true;
      if (e.type === "keydown") {
        e.preventDefault();
        this.leaveFocus(e.shiftKey);
      }
      return false;
    });
    this.term.textarea?.setAttribute("aria-description", "Tab goes to the shell. F6 leaves the terminal, Shift+F6 goes back.");
    this.el.title = "F6 leaves the terminal (Tab goes to the shell)";
    this.term.onData((s) => this.sendInput(this.encoder.encode(s)));
    this.term.onBinary((s) => this.sendInput(Uint8Array.from(s, (c) => c.charCodeAt(0) & 255)));
    this.term.onResize(({ cols, rows }) => this.control({ type: "resize", cols, rows }));
    this.resizeObserver = new ResizeObserver(() => this.refit());
    this.resizeObserver.observe(this.el);
    this.refit();
    this.connect();
  }

  leaveFocus(back) {
    const all = [...document.querySelectorAll(
      'a[href], button:not([disabled]), input:not([disabled]):not([type=hidden]), select, textarea, [tabindex]:not([tabindex="-1"])',
    )].filter((el) => el.offsetParent !== null && !this.el.contains(el));
    const follows = (el) => this.el.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_FOLLOWING;
    const target = back ? all.filter((el) => !follows(el)).pop() : all.find(follows) || all[0];
    target?.focus();
  }

  tryWebgl() {
    try {
      const canvas = document.createElement("canvas");
      if (!canvas.getContext("webgl2")) return; // no WebGL: the DOM renderer is fine
      const webgl = new WebglAddon();
      webgl.onContextLoss(() => webgl.dispose());
      this.term.loadAddon(webgl);
    } catch (e) {
      // fall back silently to the default renderer
    }
  }

  refit() {
    if (this.el.offsetParent === null) return; // hidden tab
    try { this.fit.fit(); } catch (e) { /* not laid out yet */ }
  }

  url() {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const q = `cols=${this.term.cols}&rows=${this.term.rows}${this.takeover ? "&takeover=1" : ""}`;
    return `${proto}//${location.host}/ws/attempts/${this.attemptId}/terminals/${encodeURIComponent(this.name)}/?${q}`;
  }

  connect() {
    this.exited = false;
    const ws = new WebSocket(this.url());
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.unacked = 0;
    this.onStatus(this, this.lost ? "reconnecting" : "connecting");
    ws.onopen = () => {
      this.delay = 500;
      // Back after a loss: tmux repaints the whole screen, so start from a clean one (the old
      // screen stayed visible while the server was away).
      if (this.lost) this.term.reset();
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data === "string") return this.onControl(JSON.parse(ev.data));
      const bytes = new Uint8Array(ev.data);
      this.term.write(bytes, () => this.acknowledge(ws, bytes.length));
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.stopped) return;
      if (FINAL_CODES.has(ev.code)) {
        this.stopped = true;
        this.onStatus(this, "closed", ev.reason);
        this.term.write(`\r\n\x1b[1;33m[${ev.reason || "This terminal is closed."}]\x1b[0m\r\n`);
        return;
      }
      if (ev.code === 4100) {
        this.exited = true;
        this.onStatus(this, "exited");
        this.term.write("\r\n\x1b[1;33m[The shell exited. Press Enter to start a new one.]\x1b[0m\r\n");
        return;
      }
      this.lost = true;
      this.onStatus(this, "reconnecting");
      const wait = reconnectDelay(ev.code, this.delay);
      setTimeout(() => { if (!this.stopped && !this.ws) this.connect(); }, wait);
      this.delay = Math.min(this.delay * 2, 10000);
    };
  }

  acknowledge(ws, n) {
    if (ws !== this.ws) return;
    this.unacked += n;
    if (this.unacked >= ACK_EVERY) return this.flushAck();
    if (!this.ackTimer) this.ackTimer = setTimeout(() => this.flushAck(), ACK_IDLE_MS);
  }

  flushAck() {
    clearTimeout(this.ackTimer);
    this.ackTimer = null;
    if (this.unacked > 0 && this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify({ type: "ack", bytes: this.unacked }));
    }
    this.unacked = 0;
  }

  onControl(msg) {
    if (msg.type === "ready") {
      this.lost = false;
      this.readOnly = msg.read_only;
      this.term.options.disableStdin = msg.read_only;
      this.onStatus(this, msg.read_only ? "read-only" : "connected");
    } else if (msg.type === "error") {
      this.onStatus(this, "error", msg.message);
    }
  }

  sendInput(bytes) {
    if (this.exited) {
      this.term.reset();
      this.connect();
      return;
    }
    if (this.readOnly || !this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(bytes);
  }

  control(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  takeOver() {
    this.takeover = true;
    this.readOnly = false;
    this.stopped = false;
    if (this.ws) { const ws = this.ws; this.ws = null; ws.close(); }
    this.term.reset();
    this.connect();
  }

  show() {
    this.el.hidden = false;
    this.refit();
    this.term.focus();
  }

  hide() { this.el.hidden = true; }

  dispose() {
    this.stopped = true;
    if (this.ws) this.ws.close();
    this.resizeObserver.disconnect();
    this.term.dispose();
    this.el.remove();
  }
}
