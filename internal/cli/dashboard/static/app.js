// Keeps a page up to date: the dashboard says "change" on /events when a model or version of the
// namespace changed, and the page fetches itself again and swaps its main part, keeping the
// versions ticked for comparison. Confirmation and result pages are not refreshed.
"use strict";
(function () {
  if (document.body.dataset.live !== "on" || !window.EventSource) {
    return;
  }
  let pending = null;
  let updates = 0;
  function ticked() {
    return Array.from(document.querySelectorAll("input[name=compare]:checked"), (box) => box.value);
  }
  async function refresh() {
    pending = null;
    const response = await fetch(window.location.href, { credentials: "same-origin" });
    if (!response.ok) {
      return;
    }
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = page.getElementById("main");
    const main = document.getElementById("main");
    if (!fresh || !main) {
      return;
    }
    const keep = ticked();
    const focused = document.activeElement && document.activeElement.id;
    main.replaceChildren(...Array.from(fresh.childNodes, (node) => document.importNode(node, true)));
    for (const box of document.querySelectorAll("input[name=compare]")) {
      box.checked = box.checked || keep.includes(box.value);
    }
    if (focused && document.getElementById(focused)) {
      document.getElementById(focused).focus();
    }
    updates += 1;
    document.body.dataset.updates = String(updates);
  }
  const events = new EventSource("/events");
  events.addEventListener("change", () => {
    if (pending === null) {
      pending = window.setTimeout(refresh, 250);
    }
  });
})();
