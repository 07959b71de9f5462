// The survey keeps a server-side draft: answers are saved a moment after each change, so
// closing the page loses nothing. Submitting is an ordinary form post.
export function wireSurvey(form) {
  const status = form.querySelector("[data-draft-status]");
  let timer = null;
  const save = async () => {
    const data = new FormData(form);
    data.set("action", "draft");
    try {
      const r = await fetch(form.action, { method: "POST", body: data, headers: { Accept: "application/json" }, credentials: "same-origin" });
      const body = await r.json();
      if (status) status.textContent = r.ok ? "Draft saved." : body.error || "Could not save the draft.";
    } catch (e) {
      if (status) status.textContent = "Could not save the draft (offline?). Your answers are still in this page.";
    }
  };
  form.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(save, 1500);
  });
}
