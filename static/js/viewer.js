// The frame viewer: a board frame opens full size; the arrow keys move between scenes in story
// order (stills and clips), skipping those without one; Esc closes (the <dialog> element's own
// behaviour).
(function () {
  "use strict";
  const viewer = document.getElementById("viewer");
  const board = document.querySelector('#scenes [data-role="board"]');
  if (!viewer || !board) return;
  const image = viewer.querySelector('[data-role="viewer-image"]');
  const clip = viewer.querySelector('[data-role="viewer-clip"]');
  const caption = viewer.querySelector('[data-role="viewer-caption"]');
  let current = null;

  // Stills and clips (a sound has nothing to look at).
  const FRAME = '[data-role="frame"] img[data-role="image"], [data-role="frame"] video[data-role="image"]';
  const framed = () => [...board.querySelectorAll('[data-testid="scene"]')].filter((card) => card.querySelector(FRAME));

  function show(card) {
    current = card;
    const frame = card.querySelector(FRAME);
    const isClip = frame.tagName === "VIDEO";
    image.hidden = isClip;
    clip.hidden = !isClip;
    if (isClip) { clip.src = frame.getAttribute("src"); } else { clip.pause(); image.src = frame.getAttribute("src"); image.alt = frame.alt; }
    caption.textContent = `Scene ${card.dataset.position}: ${card.dataset.title}${frame.dataset.preview ? " (preview while it renders)" : ""}`;
  }

  function step(by) {
    const cards = framed();
    if (!cards.length) return;
    const at = Math.max(0, cards.indexOf(current));
    show(cards[(at + by + cards.length) % cards.length]);
  }

  board.addEventListener("click", (event) => {
    const frame = event.target.closest('[data-role="frame"] img[data-role="image"]');
    if (!frame) return;
    show(frame.closest('[data-testid="scene"]'));
    viewer.showModal();
  });
  board.addEventListener("keydown", (event) => {
    // Stills open on Enter or Space; a clip keeps those keys for playing where it is.
    const frame = event.target.closest && event.target.closest('[data-role="frame"] img[data-role="image"]');
    if (!frame || (event.key !== "Enter" && event.key !== " ")) return;
    event.preventDefault();
    show(frame.closest('[data-testid="scene"]'));
    viewer.showModal();
  });
  // On the document, not the dialog: focus may rest on the page body while the viewer is open.
  document.addEventListener("keydown", (event) => {
    if (!viewer.open) return;
    if (event.key === "ArrowRight") { event.preventDefault(); step(1); }
    if (event.key === "ArrowLeft") { event.preventDefault(); step(-1); }
  });
  viewer.querySelector('[data-role="viewer-next"]').addEventListener("click", () => step(1));
  viewer.querySelector('[data-role="viewer-prev"]').addEventListener("click", () => step(-1));
  viewer.querySelector('[data-role="viewer-close"]').addEventListener("click", () => viewer.close());
  viewer.addEventListener("close", () => clip.pause());
  viewer.addEventListener("click", (event) => { if (event.target === viewer) viewer.close(); });
})();
