// A WebSocket that reconnects by itself with capped backoff, for /ws/attempts/<id>/events/.
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
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 10000);
    };
  };
  open();
  return { close: () => { stopped = true; ws && ws.close(); } };
}
