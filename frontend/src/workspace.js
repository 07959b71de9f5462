// The running attempt's workspace: terminal tabs and the editor (the clock panel is main.js's).
import "./workspace.css";
import { TerminalTab } from "./_terminal.js";
import { Editor } from "./_editor.js";
import { api } from "./_api.js";
import { initNotes } from "./_notes.js";

class Terminals {
  constructor(root, attemptId, readOnly) {
    this.root = root;
    this.attemptId = attemptId;
    this.readOnly = readOnly;
    this.tablist = root.querySelector("[data-terminal-tabs]");
    this.panes = root.querySelector("[data-terminal-panes]");
    this.status = root.querySelector("[data-terminal-status]");
    this.takeoverButton = root.querySelector("[data-terminal-takeover]");
    this.tabs = new Map();
    this.active = null;
    const newButton = root.querySelector("[data-terminal-new]");
    if (readOnly) newButton.hidden = true;
    newButton.addEventListener("click", () => this.add(this.freeName(), true));
    if (this.takeoverButton) {
      this.takeoverButton.addEventListener("click", () => {
        if (!this.active) return;
        if (!window.confirm("Take over this terminal? You will type into the expert's shell; this is recorded in the audit log.")) return;
        this.active.takeOver();
      });
    }
    this.load();
  }

  base() { return `/api/attempts/${this.attemptId}/terminals/`; }

  async load() {
    let names = [];
    try {
      names = (await api("GET", this.base())).terminals;
    } catch (e) {
      this.say(e.message);
    }
    if (!names.length && !this.readOnly) names = ["shell-1"];
    names.forEach((n, i) => this.add(n, i === 0));
  }

  freeName() {
    for (let i = 1; ; i++) if (!this.tabs.has(`shell-${i}`)) return `shell-${i}`;
  }

  say(message) { this.status.textContent = message || ""; }

  add(name, activate) {
    const tab = document.createElement("div");
    tab.className = "tab";
    tab.setAttribute("role", "presentation");
    const label = document.createElement("button");
    label.type = "button";
    label.setAttribute("role", "tab");
    label.textContent = name;
    label.title = this.readOnly ? name : `${name} (double-click to rename)`;
    label.addEventListener("click", () => this.activate(name));
    tab.appendChild(label);
    if (!this.readOnly) {
      label.addEventListener("dblclick", () => this.rename(name));
      const close = document.createElement("button");
      close.type = "button";
      close.className = "tab-close";
      close.textContent = "×";
      close.setAttribute("aria-label", `Close terminal ${name}`);
      close.addEventListener("click", () => this.close(name));
      tab.appendChild(close);
    }
    this.tablist.appendChild(tab);
    const term = new TerminalTab({
      attemptId: this.attemptId, name, container: this.panes, readOnly: this.readOnly,
      onStatus: (t, state, message) => this.onStatus(t, state, message),
    });
    term.hide();
    this.tabs.set(name, { term, tab, label });
    if (activate || !this.active) this.activate(name);
  }

  activate(name) {
    for (const [n, entry] of this.tabs) {
      const on = n === name;
      entry.label.setAttribute("aria-selected", on ? "true" : "false");
      entry.tab.classList.toggle("active", on);
      if (on) { entry.term.show(); this.active = entry.term; } else entry.term.hide();
    }
  }

  onStatus(term, state, message) {
    const entry = this.tabs.get(term.name);
    if (entry) entry.tab.dataset.state = state;
    if (term !== this.active) return;
    const text = {
      connecting: "Connecting…", connected: "", "read-only": "Read-only: you are watching the expert's terminal.",
      reconnecting: "Connection to the server lost; reconnecting… (your shell keeps running)", exited: "The shell exited.", closed: message, error: message,
    }[state];
    this.say(text);
    if (this.takeoverButton) this.takeoverButton.hidden = state !== "read-only";
  }

  async rename(name) {
    const to = window.prompt("Rename terminal (letters, digits, - and _):", name);
    if (!to || to === name) return;
    try {
      await api("POST", `${this.base()}rename`, { name, to });
    } catch (e) {
      return this.say(e.message);
    }
    const entry = this.tabs.get(name);
    this.tabs.delete(name);
    this.tabs.set(to, entry);
    entry.term.name = to;
    entry.label.textContent = to;
    entry.tab.querySelector(".tab-close")?.setAttribute("aria-label", `Close terminal ${to}`);
  }

  async close(name) {
    if (!window.confirm(`Close terminal ${name}? Programs running in it are stopped.`)) return;
    const entry = this.tabs.get(name);
    entry.term.stopped = true;
    try {
      await api("POST", `${this.base()}close`, { name });
    } catch (e) {
      return this.say(e.message);
    }
    entry.term.dispose();
    entry.tab.remove();
    this.tabs.delete(name);
    if (this.active === entry.term) {
      this.active = null;
      const next = this.tabs.keys().next();
      if (!next.done) this.activate(next.value);
    }
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const root = document.querySelector("[data-workspace]");
  if (!root) return;
  const attemptId = root.dataset.attemptId;
  const readOnly = root.dataset.readOnly === "true";
  initNotes(root); // notes live in the app, not on the machine: never wait for it
  const status = root.querySelector("[data-terminal-status]");
  const newButton = root.querySelector("[data-terminal-new]");
  let started = false;
  const start = () => {
    if (started) return;
    started = true;
    newButton.disabled = false;
    status.textContent = "";
    window.baseliner.terminals = new Terminals(root, attemptId, readOnly);
    if (root.querySelector("[data-editor]")) window.baseliner.editor = new Editor(root, attemptId);
  };
  // The machine panel (machine.js) says whether the machine can be reached. Without it the
  // terminal socket and the files API could only answer "no machine": wait, then start
  // without a reload when it becomes ready.
  const panel = document.getElementById("machine-panel");
  if (!panel || panel.dataset.ready !== "false") return start();
  newButton.disabled = true;
  status.textContent = "Waiting for your machine…";
  document.addEventListener("machine-status", (e) => { if (e.detail && e.detail.ready) start(); });
});
