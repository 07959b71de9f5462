// Shared by every page: styles, and the live attempt-events socket.
import "./main.css";
import { connectAttemptEvents } from "./_events.js";
import { startCountdown, wireDialogs } from "./_countdown.js";
import { wireSurvey } from "./_survey.js";
import { initScorePanel } from "./_scoring.js";

window.baseliner = { connectAttemptEvents };

document.addEventListener("DOMContentLoaded", () => {
  wireDialogs();
  const survey = document.querySelector("form[data-survey]");
  if (survey) wireSurvey(survey);
  initScorePanel();
  const el = document.querySelector("[data-attempt-id]");
  if (!el) return;
  const clock = document.querySelector("[data-clock]");
  if (clock) startCountdown(clock);
  connectAttemptEvents(el.dataset.attemptId, (event) => {
    document.dispatchEvent(new CustomEvent("attempt-event", { detail: event }));
    if (event.type === "state" && event.label) {
      const s = document.getElementById("attempt-state");
      if (s) s.textContent = event.label;
    }
  });
});
