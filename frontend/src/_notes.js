// The workspace's Notes panel: the expert's notes, saved through /api/attempts/<id>/notes/.
// The draft is kept in this browser (localStorage) until it is saved, so a reload or a closed
// tab loses nothing.
import { api } from "./_api.js";

function hms(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 3600)}:${String(Math.floor(s / 60) % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

export function initNotes(root) {
  const panel = root.querySelector("[data-notes]");
  if (!panel) return;
  const url = panel.dataset.notesUrl;
  const max = Number(panel.dataset.notesMax) || 20000;
  const list = panel.querySelector("[data-notes-list]");
  const empty = panel.querySelector("[data-notes-empty]");
  const form = panel.querySelector("[data-notes-form]");
  const text = panel.querySelector("[data-notes-text]");
  const status = panel.querySelector("[data-notes-status]");
  const draftKey = `baseliner:notes-draft:${panel.dataset.attemptId}`;
  const say = (message, kind = "info") => {
    if (!status) return;
    status.textContent = message || "";
    status.className = kind === "error" ? "error" : "hint";
  };

  const show = (note) => {
    const item = document.createElement("li");
    item.className = "note";
    const when = document.createElement("time");
    when.dateTime = note.created;
    const at = new Date(note.created).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    when.textContent = note.elapsed_seconds === null ? at : `${at} · ${hms(note.elapsed_seconds)} into the attempt`;
    const body = document.createElement("p");
    body.textContent = note.text;
    item.append(when, body);
    list.appendChild(item);
    empty.hidden = true;
  };

  api("GET", url).then((data) => data.notes.forEach(show)).catch((e) => say(e.message, "error"));
  if (!form) return;

  try {
    const draft = window.localStorage.getItem(draftKey);
    if (draft && !text.value) text.value = draft;
  } catch (e) { /* storage blocked: no draft */ }
  const keepDraft = () => {
    try {
      if (text.value) window.localStorage.setItem(draftKey, text.value);
      else window.localStorage.removeItem(draftKey);
    } catch (e) { /* storage full or blocked */ }
  };
  text.addEventListener("input", keepDraft);

  const button = form.querySelector("button[type=submit]");
  const save = async () => {
    const value = text.value.trim();
    if (!value) return say("The note is empty: write something first.", "error");
    if (value.length > max) {
      return say(`The note is too long (${value.length} characters; at most ${max}). Nothing was saved: split it into several notes.`, "error");
    }
    button.disabled = true;
    say("Saving…");
    try {
      const data = await api("POST", url, { text: value });
      show(data.note);
      text.value = "";
      keepDraft();
      say("Note saved.");
    } catch (e) {
      say(e.message, "error"); // the text stays in the box (and in the draft)
    } finally {
      button.disabled = false;
    }
  };
  form.addEventListener("submit", (e) => { e.preventDefault(); save(); });
  text.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); save(); }
  });
}
