// The machine panel of the attempt page: live provisioning progress, queue place and health,
// from the attempt-events socket (main.js turns socket messages into "attempt-event"s).
const panel = document.getElementById("machine-panel");
// Which panel the server renders for a state: the page reloads only when that changes.
const PANEL = { assigned: "start", provision_failed: "start", queued: "progress", provisioning: "progress" };
const panelOf = (state) => PANEL[state] || "machine";

function setText(id, text) {
  const el = document.getElementById(id);
  if (el && text !== undefined && text !== null) el.textContent = String(text);
}

if (panel) {
  const rendered = panel.dataset.state;
  // Until the clock starts the panel is rendered by the server; when the attempt moves on
  // (to running, or a failure) reload to show the new state. Later states belong to the
  // workspace, which must not reload under the expert.
  const follow = (state) => {
    if (!state || panelOf(rendered) === "machine") return;
    if (state === "provisioning") setQueue(null);
    if (panelOf(state) !== panelOf(rendered)) window.location.reload();
  };
  const setProgress = (progress, message) => {
    const bar = document.getElementById("machine-progress");
    if (bar && typeof progress === "number") bar.value = progress;
    setText("machine-message", message);
  };
  const setQueue = (position) => {
    const box = document.getElementById("machine-queue");
    if (!box) return;
    box.hidden = !position;
    setText("queue-position", position || "");
  };
  const setHealth = (healthy) => {
    const el = document.getElementById("machine-health");
    if (el) el.hidden = healthy;
  };
  const refresh = async () => {
    // On every (re)connect: events sent while the socket was down are not replayed.
    const response = await fetch(panel.dataset.statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const status = await response.json();
    setProgress(status.progress, status.message);
    setQueue(status.state === "queued" ? status.queue_position : null);
    setHealth(status.healthy);
    follow(status.state);
  };
  document.addEventListener("attempt-event", (e) => {
    const event = e.detail || {};
    if (event.type === "connected") refresh().catch((err) => console.warn("machine status", err));
    else if (event.type === "provisioning") setProgress(event.progress, event.message);
    else if (event.type === "queue") setQueue(event.position);
    else if (event.type === "state") follow(event.state);
    else if (event.type === "machine" && typeof event.healthy === "boolean") setHealth(event.healthy);
  });
}
