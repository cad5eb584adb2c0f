// The deliverables panel: builds are asked for with fetch, and every window watching the brief
// follows them through the live socket's "deliverable.updated" events (brief-live.js hands them on
// as "storycore:deliverable.updated"). After a resync the rows are read again from the server.
(function () {
  "use strict";
  const panel = document.getElementById("deliverables");
  if (!panel) return;
  const form = panel.querySelector('[data-role="deliverables-form"]');
  const problem = panel.querySelector('[data-role="deliverables-error"]');
  const LABELS = { queued: "Waiting for a worker", running: "Building", succeeded: "Ready", failed: "Failed" };

  function row(kind) { return panel.querySelector(`[data-testid="deliverable"][data-kind="${kind}"]`); }

  function formatSize(bytes) {
    if (bytes == null) return "";
    if (bytes < 1024) return ` (${bytes} bytes)`;
    if (bytes < 1024 * 1024) return ` (${(bytes / 1024).toFixed(1)} KB)`;
    return ` (${(bytes / 1024 / 1024).toFixed(1)} MB)`;
  }

  function show(element, text) {
    element.textContent = text || "";
    element.hidden = !text;
  }

  const ORDER = { queued: 0, running: 1, succeeded: 2, failed: 2 };

  // A re-read after a resync may answer after newer events: never step a build back.
  function isOlder(item, data) {
    if (item.dataset.uuid !== data.uuid) return false;
    const held = ORDER[item.dataset.state] ?? -1;
    const bar = item.querySelector('[data-role="bar"]');
    return ORDER[data.state] < held || (ORDER[data.state] === held && data.progress < Number(bar.value));
  }

  function drawBuild(item, data) {
    if (isOlder(item, data)) return;
    item.dataset.uuid = data.uuid;
    item.dataset.state = data.state;
    const bar = item.querySelector('[data-role="bar"]');
    bar.hidden = false;
    bar.value = data.progress;
    bar.textContent = `${data.progress}%`;
    const label = LABELS[data.state] || data.state;
    item.querySelector('[data-role="state"]').textContent = data.state === "running" ? `${label} ${data.progress}%` : label;
    show(item.querySelector('[data-role="error"]'), data.error);
    show(item.querySelector('[data-role="notes"]'), data.notes);
    const open = data.state === "queued" || data.state === "running";
    const button = item.querySelector('[data-role="build"]');
    button.disabled = open;
    if (data.state === "succeeded") drawReady(item, data);
  }

  function drawReady(item, data) {
    const link = item.querySelector('[data-role="download"]');
    if (!data || !data.url) return;
    link.href = data.url;
    link.textContent = `Download${formatSize(data.size)}`;
    link.hidden = false;
    item.querySelector('[data-role="build"]').textContent = "Build again";
  }

  document.addEventListener("storycore:deliverable.updated", (event) => {
    const item = row(event.detail.kind);
    if (item) drawBuild(item, event.detail);
  });

  // A resync may have skipped events: read every row again.
  document.addEventListener("storycore:snapshot", async () => {
    try {
      const response = await fetch(panel.dataset.url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) return;
      const body = await response.json();
      body.deliverables.forEach((entry) => {
        const item = row(entry.kind);
        if (!item) return;
        if (entry.current) drawBuild(item, entry.current);
        if (entry.ready) drawReady(item, entry.ready);
      });
    } catch (error) {
      // The next snapshot or event tries again; the page still shows what it had.
    }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = event.submitter;
    if (!button || !button.value) return;
    const data = new FormData(form, button);
    show(problem, "");
    button.disabled = true;
    let response;
    try {
      response = await fetch(form.action, {
        method: "POST",
        body: data,
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
    } catch (error) {
      show(problem, "The studio could not be reached; try again.");
      button.disabled = false;
      return;
    }
    const body = await response.json().catch(() => ({}));
    if (response.status === 202 && body.deliverable) {
      const item = row(body.deliverable.kind);
      drawBuild(item, body.deliverable);
      return;
    }
    button.disabled = false;
    show(problem, body.error || `The build was not started (${response.status}).`);
  });
})();
