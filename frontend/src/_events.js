// A WebSocket that reconnects by itself with capped backoff, for /ws/attempts/<id>/events/.

// How long a socket waits before its next try. A server that went away (1006: restarted,
// crashed, network lost) is tried again every 1.5-2 s, with jitter so that a restarted
// server's returning pages spread out; a refusal with a reason backs off to 10 s.
const UNREACHABLE_RETRY_MS = 1500;
export function reconnectDelay(code, delay) {
  return code === 1006 ? Math.min(delay, UNREACHABLE_RETRY_MS) + Math.random() * 500 : delay;
}

export function connectAttemptEvents(attemptId, onEvent) {
  let delay = 500;
  let stopped = false;
  let ws;
  const open = () => {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    ws = new WebSocket(`${proto}//${location.host}/ws/attempts/${attemptId}/events/`);
    ws.onopen = () => {
      delay = 500;
      onEvent({ type: "connected" });
    };
    ws.onmessage = (m) => {
      try {
        onEvent(JSON.parse(m.data));
      } catch (e) {
        console.warn("bad event", e);
      }
    };
    ws.onclose = (e) => {
      if (stopped || e.code === 4403) return;
      setTimeout(open, reconnectDelay(e.code, delay));
      delay = Math.min(delay * 2, 10000);
    };
  };
  open();
  return { close: () => { stopped = true; ws && ws.close(); } };
}
