// The attempt countdown. The server is the only clock: the page keeps the offset between
// the server's time and this computer's (measured on each sync, halfway through the
// request), and shows deadline - (now + offset). A wrong local clock cannot shift it, and
// after a laptop sleep the next tick is right again (Date.now() is wall time); a jump in
// local time also triggers a fresh sync. Pauses, extensions and the end arrive as
// "clock"/"ended" events and through the periodic sync.
const WARN_AT = [60, 15, 5];
const FINISHED = new Set(["ended", "surveyed"]); // attempts/states.py FINISHED_STATES: show the time used

function fmt(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h}:${String(m).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

export function startCountdown(root) {
  const out = root.querySelector("[data-countdown]");
  const label = root.querySelector(".countdown-label");
  const banner = root.querySelector("[data-clock-warning]");
  const url = root.dataset.clockUrl;
  const isExpert = root.dataset.isExpert === "1";
  const surveyUrl = root.dataset.surveyUrl;
  let state = root.dataset.state;
  let deadline = root.dataset.deadline ? Date.parse(root.dataset.deadline) : null;
  let timeLeft = parseFloat(root.dataset.timeLeft || "0");
  let timeUsed = parseFloat(root.dataset.timeUsed || "0");
  // First estimate from the page itself; the sync below measures it properly.
  let offset = Date.parse(root.dataset.serverNow) - Date.now();
  let lastTick = Date.now();
  let shownWarning = null;
  let syncing = false;

  const left = () => (state === "running" && deadline !== null ? Math.max(0, (deadline - (Date.now() + offset)) / 1000) : timeLeft);

  function showWarning(text) {
    if (!banner || !text) return;
    banner.textContent = text;
    banner.hidden = false;
  }

  function apply(s, t0, t1) {
    if (t0 !== undefined) offset = Date.parse(s.server_now) - (t0 + t1) / 2;
    state = s.state;
    deadline = s.deadline ? Date.parse(s.deadline) : null;
    timeLeft = s.time_left;
    if (typeof s.time_used === "number") timeUsed = s.time_used;
    root.dataset.state = state;
    if (state === "ended" && isExpert && surveyUrl) {
      document.documentElement.dataset.attemptOver = "1"; // nothing is left to save
      window.location.assign(surveyUrl);
    }
    render();
  }

  async function sync() {
    if (syncing || !url) return;
    syncing = true;
    try {
      const t0 = Date.now();
      const r = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store", credentials: "same-origin" });
      const t1 = Date.now();
      if (r.ok) apply(await r.json(), t0, t1);
    } catch (e) {
      // Offline for a moment: keep counting from the last known deadline.
    } finally {
      syncing = false;
    }
  }

  function render() {
    const now = Date.now();
    if (Math.abs(now - lastTick) > 3000) sync(); // the computer slept, or its clock jumped (either way)
    lastTick = now;
    const l = left();
    const finished = FINISHED.has(state);
    const what = finished ? "Time used" : state === "paused" ? "Paused — time left" : "Time left";
    if (out) {
      out.textContent = fmt(finished ? timeUsed : l);
      out.setAttribute("aria-label", what);
    }
    if (label && label.textContent !== what) label.textContent = what;
    if (state === "running") {
      const due = WARN_AT.filter((m) => l <= m * 60 && l > 0);
      const m = due.length ? Math.min(...due) : null;
      if (m !== null && m !== shownWarning) {
        shownWarning = m;
        showWarning(`${m} minutes left in this attempt.`);
      }
      if (l <= 0) sync();
    }
  }

  document.addEventListener("attempt-event", (e) => {
    const ev = e.detail || {};
    if (ev.type === "connected") sync();
    else if (ev.type === "clock") apply(ev);
    else if (ev.type === "warning") showWarning(ev.message);
    else if (ev.type === "ended") {
      showWarning(ev.message);
      state = "ended";
      sync(); // the time used, from the server
      if (isExpert && ev.survey_url) {
        document.documentElement.dataset.attemptOver = "1"; // nothing is left to save
        window.location.assign(ev.survey_url);
      }
    }
  });
  document.addEventListener("visibilitychange", () => { if (!document.hidden) sync(); });
  setInterval(render, 250);
  setInterval(sync, 60000);
  render();
  sync();
}

// <button data-open-dialog="id"> opens <dialog id>; [data-close-dialog] closes its dialog.
export function wireDialogs() {
  document.querySelectorAll("[data-open-dialog]").forEach((b) => {
    b.addEventListener("click", () => document.getElementById(b.dataset.openDialog)?.showModal());
  });
  document.querySelectorAll("[data-close-dialog]").forEach((b) => {
    b.addEventListener("click", () => b.closest("dialog")?.close());
  });
}
