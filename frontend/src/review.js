// Staff pages: the attempt review (asciinema-player, command log, score chart), the live
// monitor, analysis charts and export progress. Every library is bundled (no CDN).
import { create as createPlayer } from "asciinema-player";
import "asciinema-player/dist/bundle/asciinema-player.css";
import { Chart, registerables } from "chart.js";
import "./review.css";

Chart.register(...registerables);

const jsonData = (id) => {
  const el = document.getElementById(id);
  return el ? JSON.parse(el.textContent) : null;
};

// --- attempt review ------------------------------------------------------------------

// The player compresses idle gaps longer than the limit, so a moment of the recording (seconds
// since its start) maps to a different player time. Same rule as asciinema-player: each gap
// between consecutive events counts at most `limit` seconds.
export function timeline(castText, limit) {
  const orig = [];
  const lines = castText.split("\n");
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    if (!line) continue;
    try {
      const ev = JSON.parse(line);
      if (Array.isArray(ev)) orig.push(ev[0]);
    } catch (e) {
      /* a cut line at the end of a live recording */
    }
  }
  const comp = new Array(orig.length);
  let prev = 0;
  let shift = 0;
  for (let i = 0; i < orig.length; i++) {
    const gap = orig[i] - prev;
    if (limit && gap > limit) shift += gap - limit;
    comp[i] = orig[i] - shift;
    prev = orig[i];
  }
  const toPlayer = (t) => {
    // last event at or before t
    let lo = 0;
    let hi = orig.length - 1;
    let idx = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (orig[mid] <= t) {
        idx = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (idx < 0) return Math.max(0, limit ? Math.min(t, limit) : t);
    const extra = t - orig[idx];
    return comp[idx] + (limit ? Math.min(extra, limit) : extra);
  };
  const fromPlayer = (p) => {
    let idx = -1;
    for (let i = 0; i < comp.length && comp[i] <= p; i++) idx = i;
    if (idx < 0) return p;
    return orig[idx] + (p - comp[idx]);
  };
  return { toPlayer, fromPlayer };
}

function reviewAttempt() {
  const data = jsonData("review-data");
  const state = { terminal: null, player: null, tl: null, text: {}, base: 0 };
  const container = document.getElementById("player");
  const timeOut = document.getElementById("player-time");
  const speedSel = document.getElementById("player-speed");
  const idleSel = document.getElementById("player-idle");
  const termSel = document.getElementById("player-terminal");
  const terminals = Object.fromEntries((data.terminals || []).map((t) => [t.name, t]));

  async function load(name, { at = 0, play = false } = {}) {
    const t = terminals[name];
    if (!t || !container) return;
    if (!(name in state.text)) {
      const r = await fetch(t.url, { credentials: "same-origin" });
      if (!r.ok) throw new Error(`recording ${name}: HTTP ${r.status}`);
      state.text[name] = await r.text();
    }
    const limit = idleSel && idleSel.value ? parseFloat(idleSel.value) : null;
    if (state.player) state.player.dispose();
    container.innerHTML = "";
    state.terminal = name;
    state.base = t.base;
    state.tl = timeline(state.text[name], limit);
    const opts = { speed: speedSel ? parseFloat(speedSel.value) : 1, fit: "width", preload: true, terminalFontSize: "small" };
    if (limit) opts.idleTimeLimit = limit;
    if (at > 0) opts.startAt = state.tl.toPlayer(at);
    state.player = createPlayer({ data: state.text[name] }, container, opts);
    window.baselinerReview.player = state.player;
    if (termSel) termSel.value = name;
    if (play) await state.player.play();
  }

  // Seek to a wall-clock moment (epoch seconds) in a terminal's recording.
  async function seekTo(epoch, terminal) {
    const name = terminal && terminals[terminal] ? terminal : state.terminal || Object.keys(terminals)[0];
    if (!name) return;
    if (name !== state.terminal) await load(name);
    const orig = Math.max(0, epoch - state.base);
    const target = state.tl.toPlayer(orig);
    await state.player.seek(target);
  }

  const current = () => (state.player && state.tl ? state.tl.fromPlayer(state.player.getCurrentTime() || 0) : 0);
  window.baselinerReview = { seekTo, current, player: null, timeline };

  if (container && termSel) {
    load(termSel.value).catch((e) => console.warn(e));
    termSel.addEventListener("change", () => load(termSel.value));
    const reload = () => {
      const at = current();
      load(state.terminal, { at });
    };
    speedSel && speedSel.addEventListener("change", reload);
    idleSel && idleSel.addEventListener("change", reload);
    setInterval(() => {
      if (timeOut && state.player) timeOut.textContent = (state.player.getCurrentTime() || 0).toFixed(1);
    }, 250);
  }

  document.querySelectorAll("#marker-list .marker").forEach((b) =>
    b.addEventListener("click", () => seekTo(parseFloat(b.dataset.at), state.terminal)),
  );
  document.querySelectorAll("#command-log tr.command").forEach((row) => {
    const go = () => {
      document.querySelectorAll("#command-log tr.current").forEach((r) => r.classList.remove("current"));
      row.classList.add("current");
      seekTo(parseFloat(row.dataset.at), row.dataset.terminal);
      document.getElementById("player")?.scrollIntoView({ block: "nearest" }); // the reviewer sees where it jumped
    };
    row.addEventListener("click", go);
    row.addEventListener("keydown", (e) => {
      if (e.key === "Enter") go();
    });
  });
  const search = document.getElementById("command-search");
  if (search) {
    search.addEventListener("input", () => {
      const q = search.value.trim().toLowerCase();
      document.querySelectorAll("#command-log tr.command").forEach((row) => {
        row.hidden = q !== "" && !row.textContent.toLowerCase().includes(q);
      });
    });
  }
  const useBtn = document.getElementById("annotation-use-player");
  if (useBtn) {
    useBtn.addEventListener("click", () => {
      const field = document.getElementById("annotation-elapsed");
      // Wall time since the clock started (pauses not subtracted).
      if (field && data.started) field.value = Math.max(0, state.base + current() - data.started).toFixed(0);
    });
  }

  const canvas = document.getElementById("score-chart");
  if (canvas && data.scores.length) {
    const ok = data.scores.filter((s) => s.status === "ok" && s.normalized !== null);
    let best = -Infinity;
    const steps = ok.map((s) => {
      best = data.aggregation === "last" ? s.normalized : Math.max(best, s.normalized);
      return { x: s.elapsed / 3600, y: best };
    });
    new Chart(canvas, {
      type: "scatter",
      data: {
        datasets: [
          { label: "Normalized score", data: ok.map((s) => ({ x: s.elapsed / 3600, y: s.normalized })) },
          { label: data.aggregation === "last" ? "Latest" : "Best so far", data: steps, showLine: true, stepped: true, pointRadius: 0 },
        ],
      },
      options: { animation: false, scales: { x: { title: { display: true, text: "hours" } }, y: { title: { display: true, text: "normalized" } } } },
    });
  }
}

// --- monitor -------------------------------------------------------------------------------

function fmtDuration(s) {
  if (s === null || s === undefined) return "—";
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h}h ${String(m).padStart(2, "0")}m`;
}

function monitor(root) {
  const table = document.getElementById("monitor");
  const tbody = table.querySelector("tbody");
  let rows = [];
  let sortKey = "id";
  let sortDir = 1;
  const cell = (text, href) => {
    const td = document.createElement("td");
    if (href) {
      const a = document.createElement("a");
      a.href = href;
      a.textContent = text;
      td.appendChild(a);
    } else td.textContent = text;
    return td;
  };
  const render = () => {
    const sorted = [...rows].sort((a, b) => {
      const x = a[sortKey];
      const y = b[sortKey];
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * sortDir;
    });
    tbody.replaceChildren();
    if (!sorted.length) {
      const tr = document.createElement("tr");
      tr.className = "empty";
      const td = cell("No attempt is running.");
      td.colSpan = 11;
      tr.appendChild(td);
      tbody.appendChild(tr);
    }
    for (const r of sorted) {
      const tr = document.createElement("tr");
      tr.dataset.attempt = r.id;
      tr.append(
        cell(`#${r.id}`, r.url),
        cell(r.expert),
        cell(r.environment),
        cell(r.state + (r.invalid ? " (invalid)" : "")),
        cell(fmtDuration(r.time_left)),
        cell(r.best === null ? "—" : r.best.toFixed(3)),
        cell(String(r.scorings)),
        cell(r.idle_seconds === null ? "—" : `${fmtDuration(r.idle_seconds)} ago`),
        cell(r.machine + (r.health_failures ? ` (${r.health_failures} failed checks)` : "")),
        cell(r.gpu || "—"),
        cell(r.cost === null ? "—" : `$${r.cost.toFixed(2)}`),
      );
      tbody.appendChild(tr);
    }
    const alerts = document.getElementById("monitor-alerts");
    if (alerts) {
      alerts.replaceChildren(...rows.flatMap((r) => (r.alerts || []).map((text) => {
        const li = document.createElement("li");
        li.className = "error";
        li.textContent = text;
        return li;
      })));
    }
    table.querySelectorAll("th[data-key]").forEach((th) => {
      const on = th.dataset.key === sortKey;
      th.classList.toggle("sorted-asc", on && sortDir === 1);
      th.classList.toggle("sorted-desc", on && sortDir === -1);
      th.setAttribute("aria-sort", on ? (sortDir === 1 ? "ascending" : "descending") : "none");
    });
  };
  // Each header sorts through a button of its own, so the keyboard (Tab, Enter) sorts too.
  table.querySelectorAll("th[data-key]").forEach((th) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "sort";
    button.append(...th.childNodes);
    th.replaceChildren(button);
    button.addEventListener("click", () => {
      sortDir = th.dataset.key === sortKey ? -sortDir : 1;
      sortKey = th.dataset.key;
      render();
    });
  });
  const poll = async () => {
    try {
      const r = await fetch(root.dataset.url, { credentials: "same-origin" });
      if (r.ok) {
        const body = await r.json();
        rows = body.attempts;
        render();
        const u = document.getElementById("monitor-updated");
        if (u) u.textContent = `Updated ${new Date().toLocaleTimeString()}.`;
      }
    } catch (e) {
      console.warn("monitor poll failed", e);
    }
  };
  poll();
  setInterval(poll, 3000);
}

// --- analysis ------------------------------------------------------------------------------

function analysis() {
  const charts = jsonData("analysis-data") || [];
  for (const c of charts) {
    const section = document.querySelector(`.env-analysis[data-environment="${CSS.escape(c.environment)}"]`);
    if (!section) continue;
    const opts = { animation: false, plugins: { legend: { display: false } } };
    new Chart(section.querySelector(".chart-histogram"), {
      type: "bar",
      data: { labels: c.histogram.map((b) => `${b.from.toFixed(1)}–${b.to.toFixed(1)}`), datasets: [{ label: "attempts", data: c.histogram.map((b) => b.count) }] },
      options: opts,
    });
    new Chart(section.querySelector(".chart-curve"), {
      type: "line",
      data: {
        labels: c.curve.map((p) => (p.seconds / 3600).toFixed(2)),
        datasets: [
          { label: "mean", data: c.curve.map((p) => p.mean), pointRadius: 0 },
          { label: "median", data: c.curve.map((p) => p.median), pointRadius: 0 },
        ],
      },
      options: { animation: false, scales: { x: { title: { display: true, text: "hours" } } } },
    });
    new Chart(section.querySelector(".chart-score-at-k"), {
      type: "line",
      data: { labels: c.score_at_k.map((p) => p.k), datasets: [{ label: "score@k", data: c.score_at_k.map((p) => p.score) }] },
      options: { ...opts, scales: { x: { title: { display: true, text: "k" } } } },
    });
  }
}

// --- export progress --------------------------------------------------------------------------

function exportsPage() {
  const rows = [...document.querySelectorAll("#exports tr[data-job]")].filter((r) => ["queued", "running"].includes(r.dataset.status));
  for (const row of rows) {
    const timer = setInterval(async () => {
      try {
        const r = await fetch(row.dataset.url, { credentials: "same-origin" });
        if (!r.ok) return;
        const job = await r.json();
        row.dataset.status = job.status;
        row.querySelector("progress").value = job.progress;
        row.querySelector(".job-message").textContent = job.message;
        const result = row.querySelector(".job-result");
        if (job.status === "done") {
          clearInterval(timer);
          result.replaceChildren();
          const a = document.createElement("a");
          a.href = job.download;
          a.textContent = "Download";
          result.append(a, ` (${job.size} bytes)`);
        } else if (job.status === "failed") {
          clearInterval(timer);
          result.textContent = job.error;
          result.className = "job-result error";
        } else result.textContent = job.status;
      } catch (e) {
        console.warn("export poll failed", e);
      }
    }, 1000);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const root = document.querySelector("[data-review-page]");
  if (!root) return;
  const page = root.dataset.reviewPage;
  if (page === "attempt") reviewAttempt();
  else if (page === "monitor") monitor(root);
  else if (page === "analysis") analysis();
  else if (page === "exports") exportsPage();
});
