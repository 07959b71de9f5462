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
  // Whether the running attempt's machine can be reached: shown here, and told to the
  // workspace (workspace.js opens terminals and files only once it is).
  const setReady = (ready) => {
    if (typeof ready !== "boolean") return;
    panel.dataset.ready = String(ready);
    const yes = document.getElementById("machine-ready");
    const no = document.getElementById("machine-not-ready");
    if (yes) yes.hidden = !ready;
    if (no) no.hidden = ready;
    document.dispatchEvent(new CustomEvent("machine-status", { detail: { ready } }));
  };
  const refresh = async () => {
    // On every (re)connect: events sent while the socket was down are not replayed.
    const response = await fetch(panel.dataset.statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const status = await response.json();
    setProgress(status.progress, status.message);
    setQueue(status.state === "queued" ? status.queue_position : null);
    setHealth(status.healthy);
    if (panelOf(rendered) === "machine") setReady(status.ready);
    follow(status.state);
  };
  document.addEventListener("attempt-event", (e) => {
    const event = e.detail || {};
    const reread = () => refresh().catch((err) => console.warn("machine status", err));
    if (event.type === "connected") return reread();
    // Once the clock runs, any news about the machine may change whether it can be reached.
    if (panelOf(rendered) === "machine" && ["state", "machine", "provisioning"].includes(event.type)) reread();
    if (event.type === "provisioning") setProgress(event.progress, event.message);
    else if (event.type === "queue") setQueue(event.position);
    else if (event.type === "state") follow(event.state);
    else if (event.type === "machine" && typeof event.healthy === "boolean") setHealth(event.healthy);
  });
}
