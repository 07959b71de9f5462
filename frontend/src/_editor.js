// The file tree and the CodeMirror 6 editor over /api/attempts/<id>/files/ (SFTP on the machine).
import { EditorView, basicSetup } from "codemirror";
import { EditorState, Compartment } from "@codemirror/state";
import { keymap } from "@codemirror/view";
import { python } from "@codemirror/lang-python";
import { javascript } from "@codemirror/lang-javascript";
import { markdown } from "@codemirror/lang-markdown";
import { api } from "./_api.js";

function languageFor(path) {
  if (/\.py$/.test(path)) return python();
  if (/\.(m?js|ts|jsx|tsx|json)$/.test(path)) return javascript({ typescript: /\.tsx?$/.test(path) });
  if (/\.(md|markdown)$/.test(path)) return markdown();
  return [];
}

export class Editor {
  constructor(root, attemptId) {
    this.root = root;
    this.base = `/api/attempts/${attemptId}/files/`;
    this.tree = root.querySelector("[data-file-tree]");
    this.status = root.querySelector("[data-editor-status]");
    this.pathLabel = root.querySelector("[data-editor-path]");
    this.saveButton = root.querySelector("[data-editor-save]");
    this.conflict = root.querySelector("[data-editor-conflict]");
    this.path = null;
    this.version = null;
    this.dirty = false;
    this.language = new Compartment();
    this.view = new EditorView({
      parent: root.querySelector("[data-editor]"),
      state: this.newState("", null),
    });
    this.saveButton.addEventListener("click", () => this.save(false));
    root.querySelector("[data-file-new]").addEventListener("click", () => this.create("file"));
    root.querySelector("[data-folder-new]").addEventListener("click", () => this.create("dir"));
    root.querySelector("[data-file-refresh]").addEventListener("click", () => this.refresh());
    root.querySelector("[data-file-rename]").addEventListener("click", () => this.rename());
    root.querySelector("[data-file-delete]").addEventListener("click", () => this.remove());
    this.conflict.querySelector("[data-conflict-reload]").addEventListener("click", () => { this.conflict.hidden = true; this.open(this.path, true); });
    this.conflict.querySelector("[data-conflict-overwrite]").addEventListener("click", () => { this.conflict.hidden = true; this.save(true); });
    this.updateButtons();
    this.refresh();
    // A reload, a closed tab or a pause would drop unsaved edits without a word: the browser
    // asks first (not once the attempt is over and the page moves on to the survey).
    window.addEventListener("beforeunload", (e) => {
      if (!this.dirty || document.documentElement.dataset.attemptOver) return;
      e.preventDefault();
      e.returnValue = "";
    });
  }

  newState(doc, path) {
    return EditorState.create({
      doc,
      extensions: [
        basicSetup,
        keymap.of([{ key: "Mod-s", preventDefault: true, run: () => { this.save(false); return true; } }]),
        this.language.of(path ? languageFor(path) : []),
        EditorView.updateListener.of((u) => { if (u.docChanged && !this.dirty) { this.dirty = true; this.updateButtons(); } }),
        EditorView.contentAttributes.of({ "aria-label": "File content" }),
      ],
    });
  }

  say(message, kind = "info") {
    this.status.textContent = message;
    this.status.dataset.kind = kind;
    this.status.setAttribute("role", kind === "error" ? "alert" : "status");
  }

  updateButtons() {
    this.saveButton.disabled = !this.path;
    this.pathLabel.textContent = this.path ? `${this.path}${this.dirty ? " •" : ""}` : "No file open";
    for (const sel of ["[data-file-rename]", "[data-file-delete]"]) this.root.querySelector(sel).disabled = !this.selected();
  }

  selected() { return this.selectedPath || this.path; }

  async refresh() {
    this.tree.replaceChildren(await this.renderDir(""));
  }

  async renderDir(path) {
    const ul = document.createElement("ul");
    ul.setAttribute("role", path ? "group" : "tree");
    if (!path) ul.setAttribute("aria-label", "Files");
    let data;
    try {
      data = await api("GET", `${this.base}?path=${encodeURIComponent(path)}`);
    } catch (e) {
      this.say(e.message, "error");
      return ul;
    }
    for (const entry of data.entries) {
      const li = document.createElement("li");
      li.setAttribute("role", "treeitem");
      const isDir = entry.type === "dir" || entry.type === "link-dir";
      const button = document.createElement("button");
      button.type = "button";
      button.className = `file file-${entry.type}`;
      button.textContent = isDir ? `${entry.name}/` : entry.name;
      button.dataset.path = entry.path;
      button.title = entry.type.startsWith("link") ? `${entry.path} (link)` : entry.path;
      li.appendChild(button);
      if (isDir) {
        li.setAttribute("aria-expanded", "false");
        button.addEventListener("click", async () => {
          this.select(entry.path);
          if (li.getAttribute("aria-expanded") === "true") {
            li.setAttribute("aria-expanded", "false");
            li.querySelector("ul")?.remove();
          } else {
            li.setAttribute("aria-expanded", "true");
            li.appendChild(await this.renderDir(entry.path));
          }
        });
      } else {
        button.addEventListener("click", () => { this.select(entry.path); this.open(entry.path); });
      }
      ul.appendChild(li);
    }
    return ul;
  }

  select(path) {
    this.selectedPath = path;
    for (const b of this.tree.querySelectorAll("button.file")) b.classList.toggle("selected", b.dataset.path === path);
    this.updateButtons();
  }

  async open(path, force = false) {
    if (!force && this.dirty && this.path !== path && !window.confirm(`Discard unsaved changes to ${this.path}?`)) return;
    try {
      const data = await api("GET", `${this.base}content?path=${encodeURIComponent(path)}`);
      this.path = data.path;
      this.version = data.version;
      this.view.setState(this.newState(data.content, data.path));
      this.dirty = false;
      this.updateButtons();
      this.say(`Opened ${data.path}`);
    } catch (e) {
      this.say(e.message, "error");
    }
  }

  async save(overwrite) {
    if (!this.path) return;
    const content = this.view.state.doc.toString();
    try {
      const data = await api("POST", `${this.base}content`, { path: this.path, content, version: this.version, overwrite });
      this.version = data.version;
      this.dirty = false;
      this.updateButtons();
      this.say(`Saved ${this.path}`);
    } catch (e) {
      if (e.status === 409) {
        this.conflict.querySelector("[data-conflict-message]").textContent =
          `${e.message} Reload it (your changes are lost) or overwrite it with your version?`;
        this.conflict.hidden = false;
        this.conflict.querySelector("[data-conflict-reload]").focus();
      } else {
        this.say(e.message, "error");
      }
    }
  }

  parentOfSelection() {
    const sel = this.selectedPath;
    if (!sel) return "";
    const button = this.tree.querySelector(`button.file[data-path="${CSS.escape(sel)}"]`);
    if (button && (button.classList.contains("file-dir") || button.classList.contains("file-link-dir"))) return sel + "/";
    return sel.includes("/") ? sel.slice(0, sel.lastIndexOf("/") + 1) : "";
  }

  async create(type) {
    const name = window.prompt(type === "dir" ? "New folder name (relative to your home):" : "New file name (relative to your home):", this.parentOfSelection());
    if (!name) return;
    try {
      await api("POST", `${this.base}create`, { path: name, type });
      await this.refresh();
      if (type === "file") await this.open(name);
    } catch (e) {
      this.say(e.message, "error");
    }
  }

  async rename() {
    const from = this.selected();
    if (!from) return;
    const to = window.prompt(`Rename ${from} to:`, from);
    if (!to || to === from) return;
    try {
      await api("POST", `${this.base}rename`, { path: from, to });
      if (this.path === from) { this.path = to; }
      this.selectedPath = to;
      this.updateButtons();
      await this.refresh();
      this.say(`Renamed ${from} to ${to}`);
    } catch (e) {
      this.say(e.message, "error");
    }
  }

  async remove() {
    const path = this.selected();
    if (!path || !window.confirm(`Delete ${path}? This cannot be undone.`)) return;
    try {
      await api("POST", `${this.base}delete`, { path });
      if (this.path === path) {
        this.path = null; this.version = null; this.dirty = false;
        this.view.setState(this.newState("", null));
      }
      this.selectedPath = null;
      this.updateButtons();
      await this.refresh();
      this.say(`Deleted ${path}`);
    } catch (e) {
      this.say(e.message, "error");
    }
  }
}
