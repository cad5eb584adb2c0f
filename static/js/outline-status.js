// While an outline is being written from the idea, or rewritten from a note, ask how it stands each
// second and reload the page once it is done, so the story bible and the scenes appear without a click.
(function () {
  "use strict";
  const boxes = document.querySelectorAll("[data-testid='outline-status'], [data-testid='refine-status']");
  boxes.forEach(function (box) {
    if (!["queued", "running"].includes(box.dataset.state)) return;
    const label = box.querySelector("[data-role='outline-label']");
    async function ask() {
      try {
        const response = await fetch(box.dataset.statusUrl, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (response.ok) {
          const status = await response.json();
          if (status.state !== box.dataset.state && !["queued", "running"].includes(status.state)) {
            // Edits still on their way are saved first, so the reload loses none of them; one that
            // cannot be saved keeps the page (and its text) where it is, and says so.
            if (window.StoryCore && !(await window.StoryCore.flushAll())) {
              if (label) label.textContent = "Done — reload the page once your unsaved edit is saved";
              box.dataset.state = status.state;
              return;
            }
            location.reload();
            return;
          }
          if (label) label.textContent = status.label;
        }
      } catch (error) {
        // The server is restarting or the network blinked: ask again.
      }
      setTimeout(ask, 1000);
    }
    setTimeout(ask, 1000);
  });
})();
