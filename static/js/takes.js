// Takes on the storyboard: each card's strip of successful renders (newest first), a take shown in
// the card's frame with what can be done from it, takes compared side by side, the brief's picks
// played in story order (review), and the expected finish and cost of what is rendering.
// Plain script; the server's answers are JSON (briefs/take_views.py).
(function () {
  "use strict";
  const root = document.getElementById("scenes");
  if (!root) return;
  const board = root.querySelector('[data-role="board"]');
  const ZERO = "00000000-0000-0000-0000-000000000000";
  const TERMINAL = new Set(["succeeded", "failed", "cancelled", "lost"]);
  const role = (element, name) => element.querySelector(`[data-role="${name}"]`);
  const cardOf = (sceneId) => board.querySelector(`[data-testid="scene"][data-scene="${sceneId}"]`);
  const csrfToken = () => document.querySelector("input[name=csrfmiddlewaretoken]").value;

  async function post(url, values) {
    const body = new FormData();
    Object.entries(values).forEach(([name, value]) => body.set(name, value));
    try {
      const response = await fetch(url, {
        method: "POST",
        body,
        headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
        credentials: "same-origin",
      });
      return { ok: response.ok, status: response.status, data: await response.json().catch(() => ({})) };
    } catch (error) {
      return { ok: false, status: 0, data: { error: "The studio could not be reached; nothing was changed there." } };
    }
  }

  async function getJson(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    return { ok: response.ok, status: response.status, data: await response.json().catch(() => ({})) };
  }

  function say(card, text, kind = "error") {
    const box = role(card, "notice");
    box.replaceChildren();
    box.className = `notice ${kind}`;
    const line = document.createElement("p");
    line.textContent = text;
    box.appendChild(line);
    box.hidden = false;
  }

  // A still or a clip, as the artifact's content type says.
  function media(url, contentType, alt) {
    if (contentType && contentType.startsWith("video/")) {
      const video = document.createElement("video");
      video.src = url;
      video.controls = true;
      video.muted = true;
      return video;
    }
    if (contentType && contentType.startsWith("audio/")) {
      const audio = document.createElement("audio");
      audio.src = url;
      audio.controls = true;
      audio.setAttribute("aria-label", alt);
      return audio;
    }
    const image = document.createElement("img");
    image.src = url;
    image.alt = alt;
    return image;
  }

  // -- the strip -------------------------------------------------------------------------------------
  function select(card, take) {
    card.querySelectorAll('[data-testid="take"]').forEach((item) => item.classList.toggle("selected", item === take));
    const actions = role(card, "take-actions");
    actions.hidden = false;
    role(actions, "take-label").textContent = `${take.dataset.label}${take.dataset.final ? " · final" : ""}${take.dataset.seed ? ` · seed ${take.dataset.seed}` : ""}`;
    role(actions, "take-stale").textContent = take.dataset.stale || "";
    actions.querySelectorAll("form").forEach((form) => {
      if (form.dataset.role !== "take-final-form") form.action = form.getAttribute("action").replace(/[0-9a-f-]{36}/, take.dataset.take);
    });
    role(actions, "take-final-value").value = take.dataset.take;
    actions.dataset.take = take.dataset.take;
    if (!take.dataset.url) return;
    const frame = role(card, "frame");
    const alt = `${take.dataset.label} of scene ${card.dataset.position}: ${card.dataset.title}`;
    if (take.dataset.contentType.startsWith("video/")) {
      frame.replaceChildren(media(take.dataset.url, take.dataset.contentType, alt));
    } else {
      let image = frame.querySelector('img[data-role="image"]');
      if (!image) {
        frame.replaceChildren();
        image = document.createElement("img");
        image.dataset.role = "image";
        image.tabIndex = 0;
        frame.appendChild(image);
      }
      image.src = take.dataset.url;
      image.alt = alt;
      delete image.dataset.preview;
      frame.classList.remove("previewing");
    }
    frame.dataset.take = take.dataset.take;
  }

  function compareState(card) {
    const checked = board.querySelectorAll('[data-role="take-compare"]:checked').length;
    board.querySelectorAll('[data-role="compare"]').forEach((button) => {
      const here = button.closest('[data-testid="scene"]').querySelector('[data-role="take-compare"]:checked');
      button.hidden = !here;
      button.disabled = checked < 2;
      button.textContent = checked < 2 ? "Compare (pick 2 or more)" : `Compare ${checked} takes`;
    });
  }

  board.addEventListener("click", (event) => {
    const show = event.target.closest('[data-role="take-show"]');
    if (show) { select(show.closest('[data-testid="scene"]'), show.closest('[data-testid="take"]')); return; }
    const compare = event.target.closest('[data-role="compare"]');
    if (compare) openCompare();
  });
  board.addEventListener("change", (event) => {
    if (event.target.matches('[data-role="take-compare"]')) compareState(event.target.closest('[data-testid="scene"]'));
  });

  board.addEventListener("submit", async (event) => {
    const form = event.target;
    const what = form.dataset.role;
    if (!["take-again-form", "take-restore-form", "take-final-form"].includes(what)) return;
    event.preventDefault();
    event.stopPropagation();
    const card = form.closest('[data-testid="scene"]');
    const button = form.querySelector("button");
    button.disabled = true;
    const values = Object.fromEntries(new FormData(form).entries());
    delete values.csrfmiddlewaretoken;
    const result = await post(form.action, values);
    button.disabled = false;
    if (!result.ok) { say(card, result.data.error || (result.data.errors && Object.values(result.data.errors).flat().join(" ")) || `Refused (${result.status}).`); return; }
    if (what === "take-again-form") say(card, `Rendering again with seed ${result.data.seed}.`, "warn");
    if (what === "take-final-form") refreshStrip(card);
    // A restore comes back as the scene's "updated" event: the card redraws with the text restored.
  }, true);

  // The strip follows new takes, picks and edits (which make takes stale) from any window.
  const stripTimers = new Map();
  function refreshStripSoon(card) {
    clearTimeout(stripTimers.get(card));
    stripTimers.set(card, setTimeout(() => refreshStrip(card), 150));
  }
  async function refreshStrip(card) {
    let response;
    try { response = await fetch(card.dataset.cardUrl, { credentials: "same-origin" }); } catch (error) { return; }
    if (!response.ok) return;
    const template = document.createElement("template");
    template.innerHTML = (await response.text()).trim();
    const fresh = template.content.querySelector('[data-role="takes"]');
    const current = card.isConnected && role(card, "takes");
    if (!fresh || !current) return;
    const selected = role(card, "take-actions").dataset.take;
    const checked = [...current.querySelectorAll('[data-role="take-compare"]:checked')].map((box) => box.closest('[data-testid="take"]').dataset.take);
    current.replaceWith(fresh);
    checked.forEach((id) => { const box = fresh.querySelector(`[data-take="${id}"] [data-role="take-compare"]`); if (box) box.checked = true; });
    const again = selected && fresh.querySelector(`[data-testid="take"][data-take="${selected}"]`);
    if (again) {
      const actions = role(fresh, "take-actions");
      actions.hidden = false;
      again.classList.add("selected");
      role(actions, "take-label").textContent = `${again.dataset.label}${again.dataset.final ? " · final" : ""}${again.dataset.seed ? ` · seed ${again.dataset.seed}` : ""}`;
      role(actions, "take-stale").textContent = again.dataset.stale || "";
      actions.dataset.take = selected;
      actions.querySelectorAll("form").forEach((form) => {
        if (form.dataset.role !== "take-final-form") form.action = form.getAttribute("action").replace(/[0-9a-f-]{36}/, selected);
      });
      role(actions, "take-final-value").value = selected;
    }
    compareState(card);
  }

  document.addEventListener("storycore:job", (event) => {
    const job = event.detail;
    const card = cardOf(job.scene);
    if (card && job.state === "succeeded") refreshStripSoon(card);
    etaSoon();
  });
  document.addEventListener("storycore:scene", (event) => {
    const card = cardOf(event.detail.scene);
    if (card) refreshStripSoon(card);
  });

  // -- compare ---------------------------------------------------------------------------------------
  const compare = document.getElementById("compare");
  async function openCompare() {
    const ids = [...board.querySelectorAll('[data-role="take-compare"]:checked')].map((box) => box.closest('[data-testid="take"]').dataset.take);
    const url = new URL(root.dataset.compareUrl, location.href);
    ids.forEach((id) => url.searchParams.append("take", id));
    const result = await getJson(url);
    if (!result.ok) {
      const card = board.querySelector('[data-role="take-compare"]:checked').closest('[data-testid="scene"]');
      say(card, (result.data.errors && Object.values(result.data.errors).flat().join(" ")) || `Compare refused (${result.status}).`);
      return;
    }
    const { takes, differences } = result.data;
    const row = role(compare, "compare-takes");
    row.replaceChildren(...takes.map((take) => {
      const figure = document.createElement("figure");
      figure.dataset.testid = "compare-take";
      if (take.artifact_url) figure.appendChild(media(take.artifact_url, take.content_type, take.label));
      const caption = document.createElement("figcaption");
      caption.textContent = `${take.parameters.scene} · ${take.label}${take.is_final ? " · final" : ""}${take.stale.length ? " · stale" : ""}`;
      figure.appendChild(caption);
      return figure;
    }));
    const table = role(compare, "compare-table");
    table.replaceChildren();
    const head = table.insertRow();
    ["Parameter", ...takes.map((take, index) => `Take ${index + 1}`)].forEach((text) => {
      const cell = document.createElement("th");
      cell.textContent = text;
      head.appendChild(cell);
    });
    differences.forEach((difference) => {
      const line = table.insertRow();
      line.dataset.testid = "compare-difference";
      line.dataset.name = difference.name;
      line.insertCell().textContent = difference.label;
      difference.values.forEach((value) => {
        line.insertCell().textContent = value === null || value === "" ? "—" : typeof value === "object" ? JSON.stringify(value) : String(value);
      });
    });
    role(compare, "compare-same").hidden = differences.length > 0;
    compare.showModal();
  }
  role(compare, "compare-close").addEventListener("click", () => compare.close());

  // -- review: the brief's picks, full screen, in story order ------------------------------------------
  const review = document.getElementById("review");
  const reel = { shots: [], at: 0, paused: false, timer: null };

  function showShot(index) {
    clearTimeout(reel.timer);
    if (!reel.shots.length) return;
    reel.at = Math.max(0, Math.min(reel.shots.length - 1, index));
    const shot = reel.shots[reel.at];
    const frame = role(review, "review-frame");
    if (shot.take && shot.take.artifact_url) {
      const shown = media(shot.take.artifact_url, shot.take.content_type, `Scene ${shot.position}: ${shot.title}`);
      if (shown.tagName === "VIDEO") { shown.autoplay = true; shown.loop = true; }
      frame.replaceChildren(shown);
    } else {
      const none = document.createElement("p");
      none.className = "placeholder";
      none.textContent = "Not rendered yet";
      frame.replaceChildren(none);
    }
    role(review, "review-caption").textContent = `Scene ${shot.position}: ${shot.title}`;
    role(review, "review-kind").textContent = !shot.take ? "no take" : shot.take.is_final ? "final" : "newest take (no final picked)";
    role(review, "review-count").textContent = `${reel.at + 1} of ${reel.shots.length} · ${shot.duration_s} s${reel.paused ? " · paused" : ""}`;
    const pick = role(review, "review-final");
    pick.disabled = !shot.take || shot.take.is_final;
    review.dataset.scene = shot.scene;
    review.dataset.at = reel.at;
    if (!reel.paused && reel.at < reel.shots.length - 1) reel.timer = setTimeout(() => showShot(reel.at + 1), shot.duration_s * 1000);
  }

  function pause(paused) {
    reel.paused = paused;
    role(review, "review-pause").textContent = paused ? "Play" : "Pause";
    showShot(reel.at);
  }

  async function openReview() {
    const result = await getJson(root.dataset.reviewUrl);
    if (!result.ok) return;
    reel.shots = result.data.shots;
    reel.paused = false;
    role(review, "review-pause").textContent = "Pause";
    review.showModal();  // full screen by its style: Esc then closes it at once
    showShot(0);
  }

  document.querySelector('[data-role="review-open"]').addEventListener("click", openReview);
  review.addEventListener("keydown", (event) => {
    if (event.key === "ArrowRight") { event.preventDefault(); showShot(reel.at + 1); }
    else if (event.key === "ArrowLeft") { event.preventDefault(); showShot(reel.at - 1); }
    else if (event.key === " ") { event.preventDefault(); pause(!reel.paused); }
  });
  review.addEventListener("close", () => clearTimeout(reel.timer));
  role(review, "review-next").addEventListener("click", () => showShot(reel.at + 1));
  role(review, "review-prev").addEventListener("click", () => showShot(reel.at - 1));
  role(review, "review-pause").addEventListener("click", () => pause(!reel.paused));
  role(review, "review-close").addEventListener("click", () => review.close());
  role(review, "review-final").addEventListener("click", async () => {
    const shot = reel.shots[reel.at];
    if (!shot || !shot.take) return;
    const result = await post(shot.final_url, { take: shot.take.take });
    if (!result.ok) { role(review, "review-kind").textContent = result.data.error || "Not picked."; return; }
    shot.take.is_final = true;
    showShot(reel.at);
  });

  // -- expected finish and cost while something renders -------------------------------------------
  const briefEta = document.querySelector('[data-role="brief-eta"]');
  let etaTimer = null;
  function etaSoon() { clearTimeout(etaTimer); etaTimer = setTimeout(refreshEta, 300); }

  const clock = (iso) => new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const spread = (estimate) => `median ${estimate.median_s} s, ${estimate.low_s}–${estimate.high_s} s over ${estimate.samples} render${estimate.samples === 1 ? "" : "s"}`;

  async function refreshEta() {
    const open = [...board.querySelectorAll('[data-testid="scene"]')].some((card) => !TERMINAL.has(card.dataset.state) && card.dataset.state !== "none");
    let result = null;
    if (open) {
      try { result = await getJson(root.dataset.etaUrl); } catch (error) { return; }
      if (!result.ok) return;
    }
    const byJob = new Map(((result && result.data.jobs) || []).map((job) => [job.job, job]));
    board.querySelectorAll('[data-testid="scene"]').forEach((card) => {
      const box = role(card, "eta");
      const job = byJob.get(card.dataset.job);
      box.hidden = !job;
      if (!job) { box.textContent = ""; return; }
      box.textContent = job.expected_at
        ? `done around ${clock(job.expected_at)} (${spread(job.estimate)})`
        : "no past renders to estimate from";
    });
    if (!result || !result.data.open) { briefEta.hidden = true; briefEta.textContent = ""; return; }
    const data = result.data;
    const cost = data.spend.cost_usd !== null ? `$${data.spend.cost_usd}` : `${data.spend.gpu_seconds} GPU-s (unpriced)`;
    briefEta.textContent = `${data.open} rendering · ${data.expected_at ? `done around ${clock(data.expected_at)}` : "finish not yet estimable"} · cost so far ${cost}`;
    briefEta.hidden = false;
    if (open) etaTimer = setTimeout(refreshEta, 5000);
  }
  refreshEta();
})();
