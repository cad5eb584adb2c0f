// Live progress for the brief editor. The server sends a snapshot, then the brief's
// events strictly in sequence; where it cannot fill a hole it sends a fresh snapshot,
// which may come at any time. A gap seen here anyway, or a drop, means reconnecting.
(function () {
  "use strict";
  const root = document.getElementById("scenes");
  const status = document.getElementById("live-status");
  if (!root) return;
  const briefId = root.dataset.brief;
  let lastSeq = 0;
  let retry = 0;
  let socket = null;

  function card(sceneId) { return root.querySelector(`[data-scene="${sceneId}"]`); }

  function show(job) {
    const el = card(job.scene);
    if (!el) return;
    const state = el.querySelector('[data-role="state"]');
    state.textContent = job.state_label;
    state.className = `badge state-${job.state}`;
    el.querySelector('[data-role="progress"]').value = job.progress;
    el.querySelector('[data-role="error"]').textContent = job.error_code ? `${job.error_code}: ${job.error_message}` : "";
    const frame = el.querySelector('[data-role="frame"]');
    const download = el.querySelector('[data-role="download"]');
    if (job.state === "succeeded" && job.artifact_url) {
      download.href = `${job.artifact_url}?download=1`;
      download.hidden = false;
      let img = frame.querySelector('[data-role="image"]');
      if (!img || img.getAttribute("src") !== job.artifact_url) {
        frame.replaceChildren();
        img = document.createElement("img");
        img.dataset.role = "image";
        img.alt = "Render of the scene";
        img.src = job.artifact_url;
        frame.appendChild(img);
      }
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/ws/briefs/${briefId}/`);
    socket.onopen = () => { retry = 0; status.textContent = "Live updates: on"; status.dataset.state = "on"; };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "snapshot") {
        // The first message, and again whenever the server resyncs: it replaces what we hold.
        lastSeq = message.seq;
        message.jobs.forEach(show);
        return;
      }
      if (message.seq <= lastSeq) return;
      if (message.seq > lastSeq + 1) { socket.close(); return; }  // last resort: reconnect for a snapshot
      lastSeq = message.seq;
      if (message.type === "job.updated") show(message.data);
    };
    socket.onclose = (event) => {
      status.dataset.state = "off";
      if (event.code === 4403) { status.textContent = "Live updates: not allowed; sign in again."; return; }
      status.textContent = "Live updates: reconnecting…";
      retry = Math.min(retry + 1, 6);
      setTimeout(connect, 250 * 2 ** retry);
    };
  }

  // Render buttons submit in the background so the page (and its socket) stays.
  document.querySelectorAll("form.js-render").forEach((form) => {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const response = await fetch(form.action, {
        method: "POST",
        body: new FormData(form),
        headers: { Accept: "application/json" },
        credentials: "same-origin",
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) { alert(body.error || `Render refused (${response.status})`); return; }
      // With the socket on, its numbered events are the truth; a late HTTP answer could be stale.
      if (status.dataset.state !== "on") (body.jobs || [body.job]).forEach((job) => job && show(job));
    });
  });

  connect();
})();
