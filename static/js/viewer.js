// The frame viewer: a board frame opens full size; the arrow keys move between scenes in story
// order, skipping those without a frame; Esc closes (the <dialog> element's own behaviour).
(function () {
  "use strict";
  const viewer = document.getElementById("viewer");
  const board = document.querySelector('#scenes [data-role="board"]');
  if (!viewer || !board) return;
  const image = viewer.querySelector('[data-role="viewer-image"]');
  const caption = viewer.querySelector('[data-role="viewer-caption"]');
  let current = null;

  const framed = () => [...board.querySelectorAll('[data-testid="scene"]')].filter((card) => card.querySelector('img[data-role="image"]'));

  function show(card) {
    current = card;
    const frame = card.querySelector('img[data-role="image"]');
    image.src = frame.getAttribute("src");
    image.alt = frame.alt;
    caption.textContent = `Scene ${card.dataset.position}: ${card.dataset.title}${frame.dataset.preview ? " (preview while it renders)" : ""}`;
  }

  function step(by) {
    const cards = framed();
    if (!cards.length) return;
    const at = Math.max(0, cards.indexOf(current));
    show(cards[(at + by + cards.length) % cards.length]);
  }

  board.addEventListener("click", (event) => {
    const frame = event.target.closest('img[data-role="image"]');
    if (!frame) return;
    show(frame.closest('[data-testid="scene"]'));
    viewer.showModal();
  });
  board.addEventListener("keydown", (event) => {
    const frame = event.target.closest && event.target.closest('img[data-role="image"]');
    if (!frame || (event.key !== "Enter" && event.key !== " ")) return;
    event.preventDefault();
    show(frame.closest('[data-testid="scene"]'));
    viewer.showModal();
  });
  viewer.addEventListener("keydown", (event) => {
    if (event.key === "ArrowRight") { event.preventDefault(); step(1); }
    if (event.key === "ArrowLeft") { event.preventDefault(); step(-1); }
  });
  viewer.querySelector('[data-role="viewer-next"]').addEventListener("click", () => step(1));
  viewer.querySelector('[data-role="viewer-prev"]').addEventListener("click", () => step(-1));
  viewer.querySelector('[data-role="viewer-close"]').addEventListener("click", () => viewer.close());
  viewer.addEventListener("click", (event) => { if (event.target === viewer) viewer.close(); });
})();
