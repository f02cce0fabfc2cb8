// Spot Tagging Bot pages: box/line hover, live job counts, the keyboard review queue. No framework, no build.
"use strict";

// Hovering (or focusing) an OCR line highlights its box, and the other way round.
function linkLinesToBoxes() {
  document.querySelectorAll(".card").forEach((card) => {
    const pair = (n) => card.querySelectorAll(`[data-line="${CSS.escape(n)}"]`);
    card.querySelectorAll("[data-line]").forEach((el) => {
      const on = () => pair(el.dataset.line).forEach((p) => p.classList.add("hl"));
      const off = () => pair(el.dataset.line).forEach((p) => p.classList.remove("hl"));
      el.addEventListener("mouseenter", on); el.addEventListener("mouseleave", off);
      el.addEventListener("focus", on); el.addEventListener("blur", off);
    });
  });
}

// The jobs table refreshes its counts every two seconds while the page is open.
function liveJobs() {
  const table = document.querySelector("table[data-live]");
  if (!table) return;
  const refresh = async () => {
    try {
      const answer = await fetch(table.dataset.live, { headers: { Accept: "application/json" } });
      if (!answer.ok) return;
      for (const job of await answer.json()) {
        const row = [...table.querySelectorAll("tr[data-job]")].find((r) => r.dataset.job === job.job_id);
        if (!row) continue;
        const values = { status: job.status, done: job.counts.done, failed: job.counts.failed,
                         pending: job.counts.pending, assets_per_second: job.assets_per_second.toFixed(1) };
        for (const [field, value] of Object.entries(values)) {
          const cell = row.querySelector(`[data-field="${field}"]`);
          if (cell) cell.textContent = String(value);
        }
      }
    } catch (e) { /* the server is gone; the page keeps its last counts */ }
  };
  setInterval(refresh, 2000);
}

// The review queue: one item at a time; a, c, t, r decide, j/k move, Enter saves an edit, Escape cancels it.
function reviewQueue() {
  const queue = document.getElementById("queue");
  if (!queue) return;
  const items = [...queue.querySelectorAll(".item")];
  let at = 0;
  const show = (i) => {
    items.forEach((item) => item.classList.remove("current"));
    if (i >= items.length) { document.getElementById("done-all").hidden = false; return; }
    at = Math.max(0, i);
    items[at].classList.add("current");
    items[at].focus({ preventScroll: true });
    items[at].scrollIntoView({ block: "nearest" });
  };
  const nextOpen = (from) => { let i = from; while (i < items.length && items[i].dataset.decided) i++; return i; };
  const send = async (item, action, extra) => {
    const outcome = item.querySelector(".outcome");
    outcome.textContent = "Saving…";
    const body = { tag_index: Number(item.dataset.tag), action, reason: item.dataset.reason, ...extra };
    const answer = await fetch(`/api/reviews/${encodeURIComponent(item.dataset.id)}`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    const result = await answer.json().catch(() => ({ error: `HTTP ${answer.status}` }));
    if (!answer.ok) { outcome.textContent = `Not saved: ${result.error}`; outcome.classList.add("error"); return; }
    outcome.classList.remove("error");
    outcome.textContent = { accept: "Accepted", correct: "Corrected", fix_text: "Text fixed", reject: "Rejected" }[action];
    item.dataset.decided = action;
    document.body.dataset.decisions = String(Number(document.body.dataset.decisions || 0) + 1);
    show(nextOpen(at + 1));
  };
  const edit = (item, action) => {
    const form = item.querySelector(`form[data-for="${action}"]`);
    if (!form) return;
    form.hidden = false;
    const input = form.querySelector("input");
    input.focus(); input.setSelectionRange(input.value.length, input.value.length);  // edit the text, not retype it
  };
  items.forEach((item) => {
    item.querySelectorAll("button[data-action]").forEach((button) => button.addEventListener("click", () => {
      const action = button.dataset.action;
      if (action === "correct" || action === "fix_text") edit(item, action); else send(item, action, {});
    }));
    item.querySelectorAll("form.edit").forEach((form) => form.addEventListener("submit", (event) => {
      event.preventDefault();
      const input = form.querySelector("input");
      const action = form.dataset.for;
      form.hidden = true;
      send(item, action, action === "correct" ? { label: input.value } : { text: input.value });
    }));
  });
  document.addEventListener("keydown", (event) => {
    const item = items[at];
    if (!item || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.tagName === "INPUT" || event.target.tagName === "SELECT") {
      if (event.key === "Escape" && event.target.closest("form.edit")) {
        event.target.closest("form.edit").hidden = true; item.focus();
      }
      return;
    }
    const keys = { a: () => send(item, "accept", {}), r: () => send(item, "reject", {}),
                   c: () => edit(item, "correct"), t: () => edit(item, "fix_text"),
                   j: () => show(Math.min(at + 1, items.length - 1)), k: () => show(at - 1) };
    if (keys[event.key]) { event.preventDefault(); keys[event.key](); }
  });
  show(0);
}

document.addEventListener("DOMContentLoaded", () => { linkLinesToBoxes(); liveJobs(); reviewQueue(); });
