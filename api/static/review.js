"use strict";
// The review page: follow playback (current cue and word), seek by clicking, save edits as revisions.
// Every text it shows is set with textContent: model output and edits never become markup.
(() => {
  const body = document.body;
  const base = body.dataset.base;
  const media = document.getElementById("media");
  const list = document.getElementById("cues");
  const status = document.getElementById("status");
  const cues = Array.from(list.querySelectorAll(".cue"));
  const words = Array.from(list.querySelectorAll(".word"));
  const locked = body.dataset.approved === "1";
  let currentCue = null;
  let currentWord = null;

  const say = (text) => { status.textContent = text; };
  const within = (el, t) => Number(el.dataset.start) <= t && t < Number(el.dataset.end);

  function mark(found, current, name) {
    if (found === current) return current;
    if (current) current.classList.remove(name);
    if (found) found.classList.add(name);
    return found;
  }

  function follow() {
    if (media && typeof media.currentTime === "number") {
      const t = media.currentTime;
      const cue = cues.find((c) => within(c, t)) || null;
      if (cue !== currentCue && cue) cue.scrollIntoView({ block: "nearest" });
      currentCue = mark(cue, currentCue, "current");
      currentWord = mark(words.find((w) => within(w, t)) || null, currentWord, "current-word");
    }
    requestAnimationFrame(follow);
  }
  requestAnimationFrame(follow);

  async function post(path, payload) {
    const response = await fetch(base + path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(payload),
    });
    if (response.ok) {
      location.reload();
      return;
    }
    let detail = response.statusText;
    try {
      detail = (await response.json()).detail || detail;
    } catch (_) { /* not JSON */ }
    say(`Not saved: ${detail}`);
  }

  const save = (change) => post("/revisions", { base: Number(body.dataset.revision), ...change });

  function editForm(cue) {
    const form = document.createElement("form");
    form.className = "editor";
    const text = document.createElement("textarea");
    text.value = cue.querySelector(".text").textContent.trim();
    const start = document.createElement("input");
    const end = document.createElement("input");
    for (const [input, value] of [[start, cue.dataset.start], [end, cue.dataset.end]]) {
      input.type = "number";
      input.step = "any";
      input.value = value;
    }
    const ok = document.createElement("button");
    ok.textContent = "Save";
    ok.className = "save";
    const cancel = document.createElement("button");
    cancel.textContent = "Cancel";
    cancel.type = "button";
    cancel.addEventListener("click", () => form.remove());
    form.append(text, start, end, ok, cancel);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      save({ edits: [{ index: Number(cue.dataset.index), text: text.value, start: Number(start.value), end: Number(end.value) }] });
    });
    return form;
  }

  list.addEventListener("click", (event) => {
    const target = event.target;
    const cue = target.closest(".cue");
    if (!cue) return;
    if (target.closest(".editor")) return;
    if (target.closest(".edit")) {
      if (!locked && !cue.querySelector(".editor")) cue.append(editForm(cue));
      return;
    }
    if (target.closest(".speaker")) {
      const label = target.closest(".speaker").dataset.label;
      const name = locked ? null : window.prompt(`Name for ${label} (everywhere in this job)`, label);
      if (name && name !== label) save({ speakers: { [label]: name } });
      return;
    }
    const word = target.closest(".word");
    if (media && typeof media.currentTime === "number") {
      media.currentTime = Number((word || cue).dataset.start);
    }
  });

  const approve = document.getElementById("approve");
  if (approve) approve.addEventListener("click", () => post("/approve", {}));
  if (locked) list.querySelectorAll(".edit").forEach((button) => { button.disabled = true; });
})();
