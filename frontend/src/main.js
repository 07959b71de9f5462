// Shared by every page: styles, and the live attempt-events socket.
import "./main.css";
import { connectAttemptEvents } from "./_events.js";

window.baseliner = { connectAttemptEvents };

document.addEventListener("DOMContentLoaded", () => {
  const el = document.querySelector("[data-attempt-id]");
  if (!el) return;
  connectAttemptEvents(el.dataset.attemptId, (event) => {
    document.dispatchEvent(new CustomEvent("attempt-event", { detail: event }));
    if (event.type === "state" && event.label) {
      const s = document.getElementById("attempt-state");
      if (s) s.textContent = event.label;
    }
  });
});
