// The score log panel (templates/scoring/_panel.html): the Score button, a table and a chart
// of normalized score over elapsed time, kept up to date by "score" and "scoring" events from
// the attempt events socket (dispatched as `attempt-event` DOM events by main.js).
import { Chart, LineController, LineElement, PointElement, LinearScale, Tooltip } from "chart.js";

Chart.register(LineController, LineElement, PointElement, LinearScale, Tooltip);

const fmt = (v, digits = 3) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
const elapsed = (s) => {
  s = Math.floor(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return `${h}:${String(m).padStart(2, "0")}:${String(sec).padStart(2, "0")}`;
};

export function initScorePanel() {
  const panel = document.getElementById("score-panel");
  if (!panel) return;
  const button = panel.querySelector("#score-button");
  const status = panel.querySelector("#score-status");
  const tbody = panel.querySelector("#score-table tbody");
  const empty = panel.querySelector("#score-empty");
  const csrf = panel.querySelector("input[name=csrfmiddlewaretoken]").value;
  const log = { entries: [], counting_sequence: null, show_raw: true };

  const chart = new Chart(panel.querySelector("#score-chart"), {
    type: "line",
    data: { datasets: [{ label: "Normalized score", data: [], borderColor: "#2456d6", backgroundColor: "#2456d6", tension: 0, pointRadius: [], pointBackgroundColor: [] }] },
    options: {
      animation: false,
      maintainAspectRatio: false,
      parsing: false,
      scales: {
        x: { type: "linear", min: 0, title: { display: true, text: "Elapsed (hours)" } },
        y: { type: "linear", title: { display: true, text: "Normalized score" } },
      },
      plugins: { tooltip: { callbacks: { label: (c) => `#${c.raw.sequence}: ${fmt(c.raw.y)}` } } },
    },
  });

  function render() {
    panel.querySelectorAll(".raw-col").forEach((el) => (el.hidden = !log.show_raw));
    tbody.replaceChildren();
    for (const e of log.entries) {
      const tr = document.createElement("tr");
      tr.setAttribute("role", "row"); // the workspace lays rows out as grids (main.css)
      tr.dataset.sequence = e.sequence;
      tr.className = `score-${e.status}` + (e.sequence === log.counting_sequence ? " counting" : "");
      const cells = [`#${e.sequence}`, elapsed(e.elapsed_seconds), fmt(e.normalized_score), fmt(e.raw_score), e.status_label, e.message || ""];
      cells.forEach((text, i) => {
        const td = document.createElement("td");
        td.textContent = text;
        td.setAttribute("role", "cell");
        if (i === 3) { td.className = "raw-col"; td.hidden = !log.show_raw; }
        tr.appendChild(td);
      });
      if (e.sequence === log.counting_sequence) tr.title = "This entry counts";
      tbody.appendChild(tr);
    }
    empty.hidden = log.entries.length > 0;
    const points = log.entries.filter((e) => e.normalized_score !== null)
      .map((e) => ({ x: e.elapsed_seconds / 3600, y: e.normalized_score, sequence: e.sequence }));
    const ds = chart.data.datasets[0];
    ds.data = points;
    ds.pointRadius = points.map((p) => (p.sequence === log.counting_sequence ? 7 : 3));
    ds.pointBackgroundColor = points.map((p) => (p.sequence === log.counting_sequence ? "#067647" : "#2456d6"));
    chart.update();
    panel.dataset.entries = String(log.entries.length);
    panel.dataset.chartPoints = String(points.length);
  }

  async function reload() {
    const r = await fetch(panel.dataset.logUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!r.ok) return;
    Object.assign(log, await r.json());
    render();
  }

  function addEntry(entry, counting) {
    if (!log.entries.some((e) => e.sequence === entry.sequence)) log.entries.push(entry);
    log.entries.sort((a, b) => a.sequence - b.sequence);
    log.counting_sequence = counting;
    render();
  }

  button.addEventListener("click", async () => {
    button.disabled = true;
    status.textContent = "Requesting a scoring run…";
    try {
      const r = await fetch(panel.dataset.scoreUrl, { method: "POST", headers: { "X-CSRFToken": csrf, Accept: "application/json" }, credentials: "same-origin" });
      const body = await r.json().catch(() => ({}));
      status.textContent = body.message || body.error || `The server answered ${r.status}.`;
    } catch (e) {
      status.textContent = "Could not reach the server; try again.";
    } finally {
      button.disabled = panel.dataset.state !== "running";
    }
  });

  document.addEventListener("attempt-event", (ev) => {
    const e = ev.detail;
    if (e.type === "score" && e.entry) {
      addEntry(e.entry, e.counting_sequence);
      status.textContent = `Score #${e.entry.sequence}: ${e.entry.status_label}${e.entry.message ? " — " + e.entry.message : ""}`;
    } else if (e.type === "scoring" && e.message) {
      status.textContent = e.message;
    } else if (e.type === "state" && e.state) {
      panel.dataset.state = e.state;
      button.disabled = e.state !== "running";
    } else if (e.type === "connected") {
      reload(); // catch up on anything missed while the socket was down
    }
  });
  reload();
}
