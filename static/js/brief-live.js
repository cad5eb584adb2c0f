// Live updates for the brief editor. The server sends a snapshot, then the brief's events strictly
// in sequence; where it cannot fill a hole it sends a fresh snapshot, which may come at any time.
// A gap seen here anyway, or a drop, means reconnecting. Previews are not numbered: each is only
// the newest picture of a render in progress, and a lost one costs nothing.
// What arrives is handed on as DOM events ("storycore:job", "storycore:preview",
// "storycore:scene", and "storycore:<type>" for any other numbered event) for the page to draw.
(function () {
  "use strict";
  const root = document.getElementById("scenes");
  const status = document.getElementById("live-status");
  if (!root) return;
  const briefId = root.dataset.brief;
  let lastSeq = 0;
  let retry = 0;

  function emit(name, detail) { document.dispatchEvent(new CustomEvent(`storycore:${name}`, { detail })); }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/briefs/${briefId}/`);
    socket.onopen = () => { retry = 0; status.textContent = "Live updates: on"; status.dataset.state = "on"; };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "job.preview") { emit("preview", message); return; }
      if (message.type === "snapshot") {
        // The first message, and again whenever the server resyncs: it replaces what we hold.
        lastSeq = message.seq;
        message.jobs.forEach((job) => emit("job", job));
        emit("snapshot", message);
        return;
      }
      if (message.seq <= lastSeq) return;
      if (message.seq > lastSeq + 1) { socket.close(); return; }  // last resort: reconnect for a snapshot
      lastSeq = message.seq;
      if (message.type === "job.updated") emit("job", message.data);
      else if (message.type === "scene.changed") emit("scene", message.data);
      else emit(message.type, message.data);  // e.g. "storycore:deliverable.updated"
    };
    socket.onclose = (event) => {
      status.dataset.state = "off";
      if (event.code === 4403) { status.textContent = "Live updates: not allowed; sign in again."; return; }
      status.textContent = "Live updates: reconnecting…";
      retry = Math.min(retry + 1, 6);
      setTimeout(connect, 250 * 2 ** retry);
    };
  }

  connect();
})();
