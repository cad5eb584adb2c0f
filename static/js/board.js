// The storyboard: cards in story order that save as the writer types, reorder by drag or keyboard,
// duplicate, delete with undo, render what is on screen, and follow renders live.
// Plain script, no build step; the server's answers are JSON (see briefs/views.py).
(function () {
  "use strict";
  const root = document.getElementById("scenes");
  if (!root) return;
  const board = root.querySelector('[data-role="board"]');
  const liveStatus = document.getElementById("live-status");
  const progress = document.querySelector('[data-testid="brief-progress"]');
  const briefNotice = document.querySelector('[data-role="brief-notice"]');
  const toasts = document.getElementById("toasts");
  const AUTOSAVE_MS = 600;
  const RETRY_MS = 3000;
  const TERMINAL = new Set(["succeeded", "failed", "cancelled", "lost"]);
  const ZERO = "00000000-0000-0000-0000-000000000000";

  const cards = () => [...board.querySelectorAll('[data-testid="scene"]')];
  const cardOf = (sceneId) => board.querySelector(`[data-scene="${sceneId}"]`);
  const role = (element, name) => element.querySelector(`[data-role="${name}"]`);
  const csrfToken = () => document.querySelector("input[name=csrfmiddlewaretoken]").value;

  async function post(url, body) {
    try {
      const response = await fetch(url, {
        method: "POST",
        body,
        headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
        credentials: "same-origin",
      });
      const data = await response.json().catch(() => ({}));
      return { ok: response.ok, status: response.status, data };
    } catch (error) {
      return { ok: false, status: 0, data: { error: "The studio could not be reached; nothing was changed there." } };
    }
  }

  async function fragment(url) {
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`${url} answered ${response.status}`);
    const template = document.createElement("template");
    template.innerHTML = (await response.text()).trim();
    return template.content;
  }

  function formWith(values) {
    const body = new FormData();
    body.set("csrfmiddlewaretoken", csrfToken());
    Object.entries(values).forEach(([name, value]) => body.set(name, value));
    return body;
  }

  // -- notices, asks and toasts: in the page, next to what they are about; never alert() -----------
  function notice(box, text, kind = "error", choices = []) {
    box.replaceChildren();
    box.className = `notice ${kind}`;
    const line = document.createElement("p");
    line.textContent = text;
    box.appendChild(line);
    choices.forEach(([label, action, testId]) => {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = label;
      if (testId) button.dataset.testid = testId;
      button.addEventListener("click", () => { box.hidden = true; action(); });
      box.appendChild(button);
    });
    box.hidden = false;
    if (!inView(box)) box.scrollIntoView({ block: "center" });
  }

  function inView(element) {
    const rect = element.getBoundingClientRect();
    return rect.top >= 0 && rect.bottom <= window.innerHeight;
  }

  function toast(text, action) {
    const item = document.createElement("div");
    item.className = "toast";
    item.dataset.testid = "toast";
    const words = document.createElement("span");
    words.textContent = text;
    item.appendChild(words);
    if (action) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = action.label;
      button.dataset.testid = "toast-action";
      button.addEventListener("click", async () => { button.disabled = true; await action.run(); item.remove(); });
      item.appendChild(button);
    }
    const close = document.createElement("button");
    close.type = "button";
    close.className = "link";
    close.textContent = "×";
    close.setAttribute("aria-label", "Dismiss");
    close.addEventListener("click", () => item.remove());
    item.appendChild(close);
    toasts.appendChild(item);
    setTimeout(() => item.remove(), 30000);
  }

  // -- errors next to the field they are about ------------------------------------------------------
  function clearErrors(form) {
    form.querySelectorAll('[data-role="field-error"]').forEach((list) => list.remove());
    form.querySelectorAll("[aria-invalid]").forEach((input) => input.removeAttribute("aria-invalid"));
  }

  function showErrors(form, errors) {
    clearErrors(form);
    let first = null;
    Object.entries(errors).forEach(([name, problems]) => {
      const holder = form.querySelector(`[data-field="${name}"]`) || form;
      const list = document.createElement("ul");
      list.className = "errorlist";
      list.dataset.role = "field-error";
      list.dataset.testid = "field-error";
      list.dataset.field = name;
      problems.forEach((problem) => {
        const item = document.createElement("li");
        item.textContent = problem;
        list.appendChild(item);
      });
      holder.insertBefore(list, holder === form ? form.firstChild : null);
      holder.querySelectorAll("input, textarea, select").forEach((input) => input.setAttribute("aria-invalid", "true"));
      first = first || holder;
    });
    const details = form.closest("details");
    if (details) details.open = true;
    if (first && !inView(first)) first.scrollIntoView({ block: "center" });
  }

  // -- saving as the writer types ---------------------------------------------------------------------
  // A Saver counts edits; a save covers the edits made before it started, so typing during a save
  // leaves the form dirty and saves again. `flush()` is what Render and leaving wait for.
  class Saver {
    constructor(form, { url, stateBox, extra = () => ({}), onSaved = () => {}, onConflict = null }) {
      Object.assign(this, { form, url, stateBox, extra, onSaved, onConflict });
      this.edits = 0;
      this.saved = 0;
      this.inflight = null;
      this.timer = null;
      form.addEventListener("input", (event) => { if (event.target.type !== "file") this.touch(AUTOSAVE_MS); });
      form.addEventListener("change", (event) => {
        if (["select-one", "select-multiple", "checkbox", "radio", "file"].includes(event.target.type)) this.touch(0);
        else this.save();  // leaving a text field saves it at once
      });
      form.addEventListener("submit", (event) => { event.preventDefault(); this.save(); });
    }

    get dirty() { return this.edits !== this.saved || this.inflight !== null; }

    state(kind, text) {
      if (!this.stateBox) return;
      this.stateBox.dataset.state = kind;
      this.stateBox.textContent = text;
    }

    touch(delay) {
      this.edits += 1;
      this.state("unsaved", "Unsaved changes");
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.save(), delay);
    }

    async flush() {
      clearTimeout(this.timer);
      if (this.inflight) await this.inflight;
      return this.edits === this.saved ? true : this.save();
    }

    async save(options = {}) {
      clearTimeout(this.timer);
      if (this.inflight) { await this.inflight; }
      if (this.edits === this.saved && !options.overwrite) return true;
      const edits = this.edits;
      const body = new FormData(this.form);
      Object.entries({ ...this.extra(), ...options }).forEach(([name, value]) => body.set(name, value));
      this.state("saving", "Saving…");
      this.inflight = post(this.url, body);
      const result = await this.inflight;
      this.inflight = null;
      if (result.ok) {
        this.saved = edits;
        clearErrors(this.form);
        // A file went up with this save; sending it again with every keystroke would be waste.
        this.form.querySelectorAll('input[type="file"]').forEach((input) => { input.value = ""; });
        this.form.querySelectorAll('input[type="checkbox"][name$="-clear"], input[type="checkbox"][name$="_clear"]').forEach((box) => { box.checked = false; });
        this.state(this.edits === edits ? "saved" : "unsaved", this.edits === edits ? "Saved" : "Unsaved changes");
        this.onSaved(result.data);
        if (this.edits !== edits) this.touch(AUTOSAVE_MS);
        return true;
      }
      if (result.status === 400 && result.data.errors) {
        showErrors(this.form, result.data.errors);
        this.state("error", "Not saved: see the highlighted field");
      } else if (result.status === 409 && result.data.code === "conflict" && this.onConflict) {
        this.onConflict(result.data);
        this.state("error", "Not saved: saved elsewhere first");
      } else if (result.status === 0) {
        this.state("error", "Not saved: the studio cannot be reached; trying again");
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.save(), RETRY_MS);
      } else {
        this.state("error", `Not saved: ${result.data.error || `the studio answered ${result.status}`}`);
      }
      return false;
    }
  }

  const savers = new Map();  // form -> Saver, for every form of the page that saves as you type
  const sceneSavers = new WeakMap();  // card -> Saver
  const anyDirty = () => [...savers.values()].some((saver) => saver.dirty);
  const flushAll = async () => (await Promise.all([...savers.values()].map((saver) => saver.flush()))).every(Boolean);
  window.StoryCore = { flushAll, anyDirty };

  window.addEventListener("beforeunload", (event) => {
    if (!anyDirty()) return;
    event.preventDefault();
    event.returnValue = "";  // the browser's own "leave the page?" question: edits would be lost
  });

  // -- one card ------------------------------------------------------------------------------------
  function setUp(card) {
    const shown = card.querySelector('[data-role="frame"] [data-role="image"]');
    if (shown && !shown.dataset.preview) {
      card.dataset.frameUrl = shown.getAttribute("src");
      card.dataset.frameKind = shown.dataset.kind || "image";
    }
    const form = role(card, "scene-form");
    const saver = new Saver(form, {
      // The attribute, not the property: a card set up before it joins the page has no base URL.
      url: form.getAttribute("action"),
      stateBox: role(card, "save-state"),
      extra: () => ({ base_version: card.dataset.version }),
      onSaved: (data) => {
        applyScene(card, data.scene);
        if (data.note) notice(role(card, "notice"), data.note, "warn");
      },
      onConflict: (data) => showConflict(card, data),
    });
    savers.set(form, saver);
    sceneSavers.set(card, saver);
  }

  function forget(card) {
    const saver = sceneSavers.get(card);
    if (saver) { clearTimeout(saver.timer); savers.delete(saver.form); }
  }

  function applyScene(card, scene) {
    if (!scene) return;
    const templateBefore = card.dataset.template;
    card.dataset.version = scene.version;
    card.dataset.rev = `${scene.version}-${scene.bible_version}`;
    card.dataset.title = scene.title;
    role(card, "base-version").value = scene.version;
    role(card, "title").textContent = scene.title;
    role(card, "shot").textContent = scene.shot;
    role(card, "composed-prompt").textContent = scene.composed.prompt;
    role(card, "composed-negative").textContent = scene.composed.negative_prompt || "";
    role(card, "composed-negative-line").hidden = !scene.composed.negative_prompt;
    const template = scene.fields && scene.fields.template !== undefined ? String(scene.fields.template || "") : templateBefore;
    if (templateBefore !== undefined && template !== templateBefore) refreshCard(card);  // its parameter form changes
    const box = role(card, "notice");
    if (box.classList.contains("conflict")) box.hidden = true;
  }

  function fieldLabel(card, name) {
    const label = card.querySelector(`[data-field="${name}"] label`);
    return label ? label.textContent.replace(/:$/, "") : name;
  }

  function shown(card, name, value) {
    if (Array.isArray(value)) {
      return value.map((id) => {
        const input = card.querySelector(`[data-field="${name}"] input[value="${id}"]`);
        const label = input && input.closest("label");
        return label ? label.textContent.trim() : id;
      }).join(", ") || "—";
    }
    if (value && typeof value === "object") return JSON.stringify(value);
    return value === null || value === "" || value === undefined ? "—" : String(value);
  }

  function showConflict(card, data) {
    const box = role(card, "notice");
    const saver = sceneSavers.get(card);
    notice(box, data.error, "conflict", [
      ["Keep mine", () => saver.save({ overwrite: "1", base_version: data.theirs.version }), "keep-mine"],
      ["Take theirs", () => { saver.saved = saver.edits; refreshCard(card); }, "take-theirs"],
    ]);
    box.classList.add("conflict");
    const table = document.createElement("table");
    table.dataset.testid = "conflict-table";
    const head = table.insertRow();
    ["Field", `Theirs (version ${data.theirs.version})`, "Yours"].forEach((text) => {
      const cell = document.createElement("th");
      cell.textContent = text;
      head.appendChild(cell);
    });
    (data.differs || []).forEach((name) => {
      const row = table.insertRow();
      row.insertCell().textContent = fieldLabel(card, name);
      row.insertCell().textContent = shown(card, name, data.theirs.fields[name]);
      row.insertCell().textContent = shown(card, name, data.yours.fields[name]);
    });
    box.insertBefore(table, box.children[1]);
  }

  async function refreshCard(card) {
    let content;
    try { content = await fragment(card.dataset.cardUrl); } catch (error) { return; }
    const fresh = content.querySelector('[data-testid="scene"]');
    if (!fresh || !card.isConnected) return;
    if (role(card, "edit").open) role(fresh, "edit").open = true;
    forget(card);
    card.replaceWith(fresh);
    setUp(fresh);
    figures();
  }

  // Another window changed the board: take its cards, but keep any card with an edit of our own.
  let boardTimer = null;
  function refreshBoardSoon() { clearTimeout(boardTimer); boardTimer = setTimeout(refreshBoard, 150); }
  async function refreshBoard() {
    let content;
    try { content = await fragment(root.dataset.boardUrl); } catch (error) { return; }
    const fresh = [...content.querySelectorAll('[data-testid="scene"]')];
    const keep = new Set(fresh.map((card) => card.dataset.scene));
    cards().forEach((card) => {
      if (keep.has(card.dataset.scene)) return;
      const saver = sceneSavers.get(card);
      if (saver && saver.dirty) {
        // Deleted in another window while this one holds an edit of it: the edit stays on screen.
        clearTimeout(saver.timer);
        notice(role(card, "notice"), "This scene was deleted in another window; your edit here is not saved. Copy what you need, or undo the delete there.", "warn");
        card.classList.add("deleted-elsewhere");
        return;
      }
      forget(card);
      card.remove();
    });
    fresh.forEach((card) => {
      const mine = cardOf(card.dataset.scene);
      let placed = mine;
      const saver = mine && sceneSavers.get(mine);
      if (!mine || (mine.dataset.rev !== card.dataset.rev && !(saver && saver.dirty))) {
        if (mine) { if (role(mine, "edit").open) role(card, "edit").open = true; forget(mine); mine.remove(); }
        setUp(card);
        placed = card;
      }
      number(placed, Number(card.dataset.position));
      board.appendChild(placed);
    });
    figures();
  }

  // -- order -----------------------------------------------------------------------------------------
  function number(card, position) {
    card.dataset.position = position;
    role(card, "position").textContent = position;
    const [earlier, later] = card.querySelectorAll('[data-role="move-form"] input[name="position"]');
    if (earlier) earlier.value = position - 1;
    if (later) later.value = position + 1;
    role(card, "handle").setAttribute("aria-label", `Move scene ${position}: drag it, or press Alt+Up or Alt+Down`);
  }

  function applyOrder(order) {
    order.forEach(({ uuid, position }) => {
      const card = cardOf(uuid);
      if (card) { number(card, position); board.appendChild(card); }
    });
  }

  function renumber() { cards().forEach((card, index) => number(card, index + 1)); }

  async function move(card, position) {
    const all = cards();
    position = Math.max(1, Math.min(all.length, position));
    if (position === Number(card.dataset.position)) return;
    // Shown at once; the server's order, which comes back, is the truth.
    const others = all.filter((other) => other !== card);
    board.insertBefore(card, others[position - 1] || null);
    renumber();
    const form = role(card, "move-form");
    const result = await post(form.getAttribute("action"), formWith({ position }));
    if (result.ok && result.data.order) applyOrder(result.data.order);
    else { notice(role(card, "notice"), result.data.error || "The scene could not be moved; the board shows the saved order again."); refreshBoard(); }
    role(card, "handle").focus();
  }

  let dragged = null;
  board.addEventListener("dragstart", (event) => {
    const handle = event.target.closest && event.target.closest('[data-role="handle"]');
    if (!handle) return;
    dragged = handle.closest('[data-testid="scene"]');
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", dragged.dataset.scene);
    event.dataTransfer.setDragImage(dragged, 24, 24);
    dragged.classList.add("dragging");
  });
  board.addEventListener("dragover", (event) => {
    if (!dragged) return;
    const over = event.target.closest('[data-testid="scene"]');
    if (!over) return;
    event.preventDefault();
    cards().forEach((card) => card.classList.toggle("drop-target", card === over && card !== dragged));
  });
  board.addEventListener("drop", (event) => {
    if (!dragged) return;
    event.preventDefault();
    const over = event.target.closest('[data-testid="scene"]');
    const card = dragged;
    if (over && over !== card) move(card, Number(over.dataset.position));
  });
  board.addEventListener("dragend", () => {
    if (dragged) dragged.classList.remove("dragging");
    cards().forEach((card) => card.classList.remove("drop-target"));
    dragged = null;
  });
  board.addEventListener("keydown", (event) => {
    const handle = event.target.closest && event.target.closest('[data-role="handle"]');
    if (!handle || !event.altKey || !["ArrowUp", "ArrowDown"].includes(event.key)) return;
    event.preventDefault();
    const card = handle.closest('[data-testid="scene"]');
    const step = event.key === "ArrowUp" ? -1 : 1;
    move(card, Number(card.dataset.position) + step);
  });

  // -- the card's buttons ------------------------------------------------------------------------------
  board.addEventListener("submit", (event) => {
    const form = event.target;
    const card = form.closest('[data-testid="scene"]');
    const what = form.dataset.role;
    if (!card || what === "scene-form") return;
    event.preventDefault();
    if (what === "render-form") render(card, false);
    else if (what === "cancel-form") cancel(card, form);
    else if (what === "duplicate-form") duplicate(card, form);
    else if (what === "delete-form") remove(card, form);
    else if (what === "move-form") move(card, Number(new FormData(form).get("position")));
  });

  async function render(card, again) {
    const button = card.querySelector('[data-testid="render-scene"]');
    if (card.dataset.submitting) return;  // a second and third click while the first is on its way
    card.dataset.submitting = "1";
    button.disabled = true;
    try {
      const box = role(card, "notice");
      // Render renders what is on screen: the edit is saved first, or nothing is rendered.
      if (!(await sceneSavers.get(card).flush())) {
        notice(box, "Not rendered: this scene has an edit that is not saved yet (see above).");
        return;
      }
      const form = role(card, "render-form");
      const result = await post(form.getAttribute("action"), formWith(again ? { again: "1" } : {}));
      if (result.ok) {
        if (!box.classList.contains("conflict")) box.hidden = true;
        if (liveStatus.dataset.state !== "on" && result.data.job) showJob(result.data.job);
      } else if (result.status === 409 && result.data.code === "already-rendering") {
        notice(box, result.data.error, "ask", [
          ["Render again", () => render(card, true), "render-again"],
          ["Keep the one in progress", () => {}, "keep-running"],
        ]);
      } else {
        notice(box, result.data.error || `The render was refused (${result.status}).`);
      }
    } finally {
      delete card.dataset.submitting;
      button.disabled = false;
    }
  }

  async function cancel(card, form) {
    const button = form.querySelector("button");
    button.disabled = true;
    const result = await post(form.getAttribute("action"), formWith({}));
    button.disabled = false;
    if (!result.ok) notice(role(card, "notice"), result.data.error || "The render could not be cancelled.", result.status === 409 ? "warn" : "error");
  }

  async function insertCard(sceneUuid, order) {
    let content;
    try {
      content = await fragment(root.dataset.cardTemplate.replace(ZERO, sceneUuid));
    } catch (error) {
      refreshBoard();
      return null;
    }
    const fresh = content.querySelector('[data-testid="scene"]');
    const already = cardOf(sceneUuid);  // another window's event may have brought it first
    if (already) { forget(already); already.replaceWith(fresh); } else board.appendChild(fresh);
    setUp(fresh);
    if (order) applyOrder(order);
    figures();
    return fresh;
  }

  async function duplicate(card, form) {
    await sceneSavers.get(card).flush();
    const result = await post(form.getAttribute("action"), formWith({}));
    if (!result.ok) { notice(role(card, "notice"), result.data.error || "The scene could not be duplicated."); return; }
    const copy = await insertCard(result.data.scene.uuid, result.data.order);
    if (copy) { copy.scrollIntoView({ block: "nearest" }); role(copy, "handle").focus(); }
  }

  async function remove(card, form) {
    const saver = sceneSavers.get(card);
    clearTimeout(saver.timer);
    const result = await post(form.getAttribute("action"), formWith({}));
    if (!result.ok) { notice(role(card, "notice"), result.data.error || "The scene could not be deleted."); return; }
    const { deleted, undo_url: undoUrl } = result.data;
    forget(card);
    card.remove();
    renumber();
    figures();
    toast(`Scene ${deleted.position} “${deleted.title}” deleted.`, {
      label: "Undo",
      run: async () => {
        const back = await post(undoUrl, formWith({}));
        if (!back.ok) { notice(briefNotice, back.data.error || "The scene could not be restored."); return; }
        await insertCard(back.data.scene.uuid, back.data.order);
      },
    });
  }

  // -- the whole brief --------------------------------------------------------------------------------
  const renderAll = document.querySelector('[data-role="render-all-form"]');
  renderAll.addEventListener("submit", (event) => { event.preventDefault(); renderEverything(null); });

  async function renderEverything(open) {
    const button = renderAll.querySelector("button");
    if (button.disabled) return;
    button.disabled = true;
    try {
      if (!(await flushAll())) {
        notice(briefNotice, "Not rendered: an edit on this page is not saved yet (see the highlighted field).");
        return;
      }
      const result = await post(renderAll.getAttribute("action"), formWith(open ? { open } : {}));
      if (result.ok) {
        briefNotice.hidden = true;
        if (liveStatus.dataset.state !== "on") (result.data.jobs || []).forEach(showJob);
        refreshRunsSoon();
      } else if (result.status === 409 && result.data.code === "already-rendering") {
        notice(briefNotice, result.data.error, "ask", [
          ["Render only the others", () => renderEverything("skip"), "render-others"],
          ["Render all again", () => renderEverything("again"), "render-all-again"],
          ["Leave it", () => {}, "leave-it"],
        ]);
      } else {
        notice(briefNotice, result.data.error || `The render was refused (${result.status}).`);
      }
    } finally {
      button.disabled = false;
    }
  }

  // The story bible and the brief's own fields: saved as typed; every card's composed prompt follows.
  // The state of the brief and its cast this page edits from: every bible save names it, and one made
  // over someone else's newer save is refused with both versions shown, as for a scene.
  const bible = document.getElementById("story-bible");
  const bibleNotice = bible && role(bible, "bible-notice");
  function showBibleConflict(saver, data) {
    const label = (name) => {
      const found = saver.form.querySelector(`[data-field="${name}"] label`);
      return found ? found.textContent.replace(/:$/, "") : name;
    };
    notice(bibleNotice, data.error, "conflict", [
      ["Keep mine", () => saver.save({ overwrite: "1" }), "bible-keep-mine"],
      ["Take theirs", () => { saver.saved = saver.edits; location.reload(); }, "bible-take-theirs"],
    ]);
    const table = document.createElement("table");
    table.dataset.testid = "bible-conflict-table";
    const head = table.insertRow();
    ["Field", "Theirs", "Yours"].forEach((text) => { const cell = document.createElement("th"); cell.textContent = text; head.appendChild(cell); });
    data.differs.forEach((name) => {
      const row = table.insertRow();
      row.insertCell().textContent = label(name);
      row.insertCell().textContent = shown(saver.form, name, data.theirs.fields[name]);
      row.insertCell().textContent = shown(saver.form, name, data.yours.fields[name]);
    });
    bibleNotice.insertBefore(table, bibleNotice.children[1]);
  }

  function setUpBibleForm(form, stateBox) {
    const saver = new Saver(form, {
      url: form.dataset.saveUrl,
      stateBox,
      extra: () => ({ base_stamp: bible.dataset.stamp }),
      onConflict: (data) => showBibleConflict(saver, data),
      onSaved: (data) => {
        if (data.stamp) bible.dataset.stamp = data.stamp;
        if (bibleNotice.classList.contains("conflict")) bibleNotice.hidden = true;
        if (data.template !== undefined && String(data.template || "") !== bible.dataset.template) {
          bible.dataset.template = String(data.template || "");
          refreshBoardSoon();  // the cards' parameter fields follow the brief's workflow
        }
        const version = data.bible_version || (data.brief && data.brief.bible_version);
        const shownVersion = document.querySelector('[data-role="bible-version"]');
        if (version && shownVersion && String(version) !== shownVersion.textContent) { shownVersion.textContent = version; refreshBoardSoon(); }
        if (data.brief) document.querySelector('[data-role="brief-title"]').textContent = data.brief.title;
        if (data.character) {
          const item = form.closest('[data-testid="character"]');
          if (item) role(item, "character-name").textContent = data.character.name;
        }
      },
    });
    savers.set(form, saver);
  }
  const briefForm = document.querySelector('[data-role="brief-form"]');
  if (briefForm) setUpBibleForm(briefForm, document.querySelector('#story-bible > p [data-role="save-state"]'));
  document.querySelectorAll('[data-role="character-form"]').forEach((form) => setUpBibleForm(form, role(form, "save-state")));

  // Forms that leave the page (add a scene, add a character, …) wait for pending saves first.
  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (savers.has(form) || form.closest('[data-role="board"]') || form === renderAll || !anyDirty()) return;
    event.preventDefault();
    if (await flushAll()) form.submit();
  });

  // -- live ---------------------------------------------------------------------------------------------
  // A still or an animation is an <img>; a clip a <video> that plays in the card; a sound an <audio>.
  const FRAME_TAGS = { video: "VIDEO", audio: "AUDIO" };
  function setFrame(card, src, preview, kind = "image") {
    const frame = role(card, "frame");
    const tag = FRAME_TAGS[kind] || "IMG";
    let element = frame.querySelector('[data-role="image"]');
    if (!element || element.tagName !== tag) {
      frame.replaceChildren();
      element = document.createElement(tag.toLowerCase());
      element.dataset.role = "image";
      if (tag === "IMG") element.tabIndex = 0;
      else { element.controls = true; element.preload = "metadata"; element.dataset.kind = kind; }
      if (tag === "VIDEO") { element.muted = true; element.loop = true; element.playsInline = true; }
      frame.appendChild(element);
    }
    if (element.getAttribute("src") !== src) element.src = src;
    const words = preview
      ? `Preview of scene ${card.dataset.position} while it renders`
      : `${tag === "IMG" ? "Frame" : tag === "VIDEO" ? "Clip" : "Sound"} of scene ${card.dataset.position}: ${card.dataset.title}`;
    if (tag === "IMG") element.alt = words; else element.setAttribute("aria-label", words);
    frame.classList.toggle("previewing", preview);
    if (preview) element.dataset.preview = "1"; else delete element.dataset.preview;
  }

  // Every output of a finished render that made more than one, each drawn by its kind.
  function showOutputs(card, job) {
    const list = role(card, "outputs");
    if (!list) return;
    const outputs = job.state === "succeeded" ? job.artifacts || [] : [];
    list.hidden = outputs.length < 2;
    if (list.hidden) { list.replaceChildren(); return; }
    list.replaceChildren(...outputs.map((output) => {
      const item = document.createElement("li");
      item.className = `output output-${output.kind}`;
      item.dataset.testid = "output";
      item.dataset.kind = output.kind;
      const tag = output.kind === "video" ? "video" : output.kind === "audio" ? "audio" : "img";
      const player = document.createElement(tag);
      player.src = output.url;
      if (tag === "img") { player.alt = `${output.kind} output, ${output.content_type}`; player.loading = "lazy"; }
      else { player.controls = true; player.preload = "metadata"; player.setAttribute("aria-label", `${output.kind}, ${output.content_type}`); }
      if (tag === "video") player.muted = true;
      const label = document.createElement("a");
      label.href = `${output.url}?download=1`;
      label.className = "output-label";
      label.textContent = output.duration_s ? `${output.kind} · ${Number(output.duration_s).toFixed(1)} s` : output.kind;
      item.append(player, label);
      return item;
    }));
  }

  // The output a card shows of a finished render: its first picture or clip, else its first sound.
  function shownOutput(job) {
    const outputs = job.artifacts || [];
    const visual = outputs.find((output) => output.kind !== "audio") || outputs[0];
    return visual ? { url: visual.url, kind: visual.kind } : { url: job.artifact_url, kind: "image" };
  }

  function showJob(job) {
    const card = cardOf(job.scene);
    if (!card) return;
    // An older render of this scene that ends late does not take the card from a newer one.
    if (card.dataset.job && card.dataset.job !== job.job && TERMINAL.has(job.state) && !TERMINAL.has(card.dataset.state)) return;
    const wasOpen = card.dataset.job === job.job && !TERMINAL.has(card.dataset.state);
    card.dataset.job = job.job;
    card.dataset.state = job.state;
    const state = role(card, "state");
    state.textContent = job.state_label;
    state.className = `badge state-${job.state}`;
    role(card, "progress").value = job.progress;
    role(card, "error").textContent = job.error_code ? `${job.error_code}: ${job.error_message}` : "";
    const cancelForm = role(card, "cancel-form");
    cancelForm.action = root.dataset.cancelTemplate.replace(ZERO, job.job);
    cancelForm.hidden = TERMINAL.has(job.state);
    if (job.state === "succeeded" && job.artifact_url) {
      const output = shownOutput(job);
      card.dataset.rendered = "1";
      card.dataset.frameUrl = output.url;
      card.dataset.frameKind = output.kind;
      setFrame(card, output.url, false, output.kind);
      const download = role(card, "download");
      download.href = `${output.url}?download=1`;
      download.hidden = false;
    } else if (TERMINAL.has(job.state)) {
      // The render ended without a frame: its previews go, the last real frame comes back.
      const frame = role(card, "frame");
      if (frame.classList.contains("previewing")) {
        const image = frame.querySelector('img[data-role="image"]');
        if (card.dataset.frameUrl) setFrame(card, card.dataset.frameUrl, false, card.dataset.frameKind || "image");
        else if (image && image.dataset.preview) { frame.classList.remove("previewing"); frame.replaceChildren(placeholder()); }
      }
    }
    showOutputs(card, job);
    if (TERMINAL.has(job.state) !== !wasOpen || job.state === "queued") refreshRunsSoon();
    figures();
  }

  function placeholder() {
    const span = document.createElement("span");
    span.className = "placeholder";
    span.textContent = "No frame yet";
    return span;
  }

  function figures() {
    const all = cards();
    const rendered = all.filter((card) => card.dataset.rendered).length;
    progress.textContent = `${rendered} of ${all.length} rendered`;
    progress.dataset.rendered = rendered;
    progress.dataset.total = all.length;
    const empty = root.querySelector('[data-role="board-empty"]');
    if (empty) empty.hidden = all.length > 0;
  }

  let runsTimer = null;
  function refreshRunsSoon() { clearTimeout(runsTimer); runsTimer = setTimeout(refreshRuns, 400); }
  let runsFollowUps = 0;
  async function refreshRuns() {
    try {
      const content = await fragment(root.dataset.runsUrl);
      const panel = document.querySelector('#runs-panel [data-role="runs"]');
      panel.replaceChildren(content);
      // A run's summary is written just after its last render ends, with no event of its own:
      // look again a few times while one is being written.
      if (panel.querySelector('[data-testid="run-pending"]') && runsFollowUps < 10) {
        runsFollowUps += 1;
        clearTimeout(runsTimer);
        runsTimer = setTimeout(refreshRuns, 2000);
      } else {
        runsFollowUps = 0;
      }
    } catch (error) {
      // The panel stays as it was; the next update tries again.
    }
  }

  let snapshots = 0;
  document.addEventListener("storycore:job", (event) => showJob(event.detail));
  document.addEventListener("storycore:preview", (event) => {
    const card = cardOf(event.detail.scene);
    if (!card || TERMINAL.has(card.dataset.state) || card.dataset.job !== event.detail.job) return;
    setFrame(card, event.detail.image, true);
  });
  document.addEventListener("storycore:scene", async (event) => {
    const change = event.detail;
    if (change.action === "final") return;  // the card's take strip follows it (takes.js)
    if (change.action !== "updated") { refreshBoardSoon(); return; }
    const card = cardOf(change.scene);
    if (!card) return;
    // Our own save's event may come before its answer: let the answer land first.
    const saver = sceneSavers.get(card);
    if (saver && saver.inflight) await saver.inflight;
    if (!card.isConnected || Number(card.dataset.version) >= change.version) return;
    if (sceneSavers.get(card).dirty) {
      notice(role(card, "notice"), "This scene was just saved elsewhere; your next save shows both versions.", "warn");
      return;
    }
    refreshCard(card);
  });
  // Another window saved the brief or its cast: the cards' composed prompts follow at once; this
  // page's bible fields are not replaced under the writer, whose next save then shows both versions.
  document.addEventListener("storycore:brief.changed", (event) => {
    setTimeout(() => {
      const busy = [...savers.values()].some((saver) => saver.inflight && (saver.form.dataset.role === "brief-form" || saver.form.dataset.role === "character-form"));
      if (!bible || busy || event.detail.stamp === bible.dataset.stamp) return;
      refreshBoardSoon();
      notice(bibleNotice, "The story bible was changed in another window.", "warn", [
        ["Reload to see it", async () => { if (await flushAll()) location.reload(); }, "bible-reload"],
      ]);
    }, 300);
  });
  document.addEventListener("storycore:snapshot", () => {
    // A reconnect may have missed scene changes; the first snapshot is the page as loaded.
    snapshots += 1;
    if (snapshots > 1) { refreshBoardSoon(); refreshRunsSoon(); }
  });

  cards().forEach(setUp);
  const firstError = document.querySelector(".errorlist");
  if (firstError) firstError.scrollIntoView({ block: "center" });
})();
