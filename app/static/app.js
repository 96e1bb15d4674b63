// The page of hobbit-classifier: pick or drop a photo, classify it with POST /v1/classify,
// box every face on the photo and show a card per face. Plain JS, no library, nothing
// loaded from the internet. With a trainer configured (TRAINER_URL), each card also offers
// to correct its answer (teach.js).
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const ui = {
    file: $("file"),
    dropzone: $("dropzone"),
    classify: $("classify"),
    fileName: $("file-name"),
    message: $("message"),
    modelLine: $("model-line"),
    photoSection: $("photo-section"),
    stage: $("stage"),
    photo: $("photo"),
    boxes: $("boxes"),
    noPreview: $("no-preview"),
    results: $("results"),
    cards: $("cards"),
    back: $("back"),
    next: $("next"),
    counter: $("face-counter"),
  };

  // Colours cycle per face so a box and its card can be matched at a glance.
  const FACE_COLOURS = ["#e8590c", "#1c7ed6", "#2b8a3e", "#ae3ec9", "#c92a2a", "#0c8599", "#5f3dc4", "#a61e4d"];

  const state = {
    file: null, // the File chosen or dropped
    previewUrl: null, // an object URL for the preview; revoked when replaced
    classes: new Map(), // class id -> {id, name, character, picture_url}, from GET /v1/models
    faces: [], // the faces of the last answer
    version: null, // the model version that gave it
    current: 0, // index of the face shown
    busy: false,
    teacher: null, // corrections to the trainer (teach.js), when the service names one
  };

  // ---- Messages --------------------------------------------------------------------

  // One live region for every message, so screen readers hear each one once.
  function showMessage(kind, title, detail) {
    ui.message.hidden = false;
    ui.message.className = "message message-" + kind;
    ui.message.dataset.kind = kind;
    ui.message.replaceChildren();
    const strong = document.createElement("strong");
    strong.textContent = title;
    ui.message.append(strong);
    if (detail) {
      const p = document.createElement("span");
      p.className = "message-detail";
      p.textContent = " " + detail;
      ui.message.append(p);
    }
  }

  function clearMessage() {
    ui.message.hidden = true;
    ui.message.dataset.kind = "";
    ui.message.replaceChildren();
  }

  // Turn a failed answer into words a person can act on. Errors are problem+json
  // (title, status, detail); read the body defensively in case a proxy answered instead.
  async function explainFailure(response) {
    let detail = "";
    try {
      const body = await response.json();
      detail = body.detail || body.title || "";
    } catch (_) {
      detail = response.statusText || "";
    }
    detail = sentence(detail);
    switch (response.status) {
      case 415:
        return ["unsupported", "Unsupported file.", detail];
      case 413:
        return ["too-large", "The photo is too large.", detail + " Try a smaller or downscaled copy."];
      case 400:
        return ["unreadable", "The photo could not be read.", detail];
      case 503:
        return ["not-ready", "The service is not ready yet.", detail + " Try again in a few seconds."];
      case 401:
        return ["error", "The service asks for an API key.", detail];
      default:
        return ["error", "Something went wrong (" + response.status + ").", detail];
    }
  }

  // The service's details are lower-case fragments ("not a supported image format ...");
  // shown after a title they read better as a sentence.
  function sentence(text) {
    text = (text || "").trim();
    if (!text) return "";
    text = text.charAt(0).toUpperCase() + text.slice(1);
    return /[.!?]$/.test(text) ? text : text + ".";
  }

  // ---- The model's classes ----------------------------------------------------------

  // Display names and pictures come from the served model. Until they arrive (or if
  // the service is still loading) faces are shown by their class id; we keep retrying.
  async function loadModel() {
    try {
      const response = await fetch("/v1/models", { headers: authHeaders({ Accept: "application/json" }) });
      if (response.status === 401 && askForKey()) {
        loadModel();
        return;
      }
      if (response.status === 401) {
        ui.modelLine.textContent = "This service needs an API key; reload the page to enter it.";
        return;
      }
      if (!response.ok) {
        const [, title, detail] = await explainFailure(response);
        ui.modelLine.textContent = response.status === 503 ? "The model is loading…" : title + " " + detail;
        setTimeout(loadModel, 2000);
        return;
      }
      const info = await response.json();
      state.classes = new Map(info.classes.map((c) => [c.id, c]));
      const names = info.classes.map((c) => c.name).join(", ");
      ui.modelLine.textContent = info.classes.length
        ? "Knows " + info.classes.length + " people: " + names + "."
        : "Knows nobody yet: every face is unknown.";
      // Faces already shown get their names and pictures now.
      if (state.faces.length) renderResults();
    } catch (_) {
      ui.modelLine.textContent = "Cannot reach the service; retrying…";
      setTimeout(loadModel, 3000);
    }
  }

  // With API_KEY set on the server, /v1/* needs an X-API-Key header. The key is asked
  // for on the first 401 and kept for this tab only (sessionStorage), never in the page.
  function authHeaders(headers) {
    const key = sessionStorage.getItem("apiKey");
    return key ? Object.assign({ "X-API-Key": key }, headers) : headers;
  }

  function askForKey() {
    const key = (window.prompt("This service needs an API key:") || "").trim();
    if (key) sessionStorage.setItem("apiKey", key);
    return Boolean(key);
  }

  function displayName(label) {
    if (label === "unknown") return "Unknown: none of the known people";
    const info = state.classes.get(label);
    if (!info) return label;
    return info.character ? info.name + " as " + info.character : info.name;
  }

  function shortName(label) {
    if (label === "unknown") return "unknown";
    const info = state.classes.get(label);
    return info ? info.name : label;
  }

  // ---- Choosing a photo -------------------------------------------------------------

  function choose(file) {
    if (!file) return;
    state.file = file;
    state.faces = [];
    clearMessage();
    clearResults();
    if (state.previewUrl) URL.revokeObjectURL(state.previewUrl);
    state.previewUrl = URL.createObjectURL(file);
    ui.photo.alt = "The chosen photo, " + file.name;
    ui.photo.src = state.previewUrl;
    ui.photoSection.hidden = false;
    ui.stage.hidden = false;
    ui.noPreview.hidden = true;
    ui.fileName.textContent = file.name;
    ui.classify.disabled = false;
  }

  ui.file.addEventListener("change", () => choose(ui.file.files[0]));

  // A file the browser cannot show (a PDF, a text file) may still be sent: the service
  // says why it refuses it, which is a better message than guessing here.
  ui.photo.addEventListener("error", () => {
    if (!state.file) return;
    ui.stage.hidden = true;
    ui.noPreview.hidden = false;
  });
  ui.photo.addEventListener("load", layoutOverlay);

  // Drag and drop: highlight the zone while a file is over it. Dropping anywhere on the
  // page counts, so a near miss does not make the browser navigate away to the file.
  ["dragenter", "dragover"].forEach((type) =>
    document.addEventListener(type, (event) => {
      event.preventDefault();
      ui.dropzone.classList.add("dragging");
    })
  );
  ["dragleave", "dragend"].forEach((type) =>
    document.addEventListener(type, (event) => {
      if (event.type === "dragend" || !event.relatedTarget) ui.dropzone.classList.remove("dragging");
    })
  );
  document.addEventListener("drop", (event) => {
    event.preventDefault();
    ui.dropzone.classList.remove("dragging");
    const file = event.dataTransfer && event.dataTransfer.files[0];
    if (file) choose(file);
  });

  // ---- Classifying ------------------------------------------------------------------

  // Resolves once the answer is shown (or the failure said); ``keepFace`` stays on the face shown.
  async function classify(keepFace = false) {
    if (!state.file || state.busy) return;
    state.busy = true;
    ui.classify.disabled = true;
    ui.classify.textContent = "Classifying…";
    ui.results.setAttribute("aria-busy", "true");
    clearMessage();
    clearResults();
    const form = new FormData();
    form.append("file", state.file, state.file.name);
    try {
      let response;
      try {
        const post = () => fetch("/v1/classify", { method: "POST", body: form, headers: authHeaders({}) });
        response = await post();
        if (response.status === 401 && askForKey()) response = await post();
      } catch (_) {
        // fetch only throws when no HTTP answer came back at all.
        showMessage("unreachable", "Cannot reach the service.", "Check that it is running, then try again.");
        return;
      }
      if (!response.ok) {
        const [kind, title, detail] = await explainFailure(response);
        showMessage(kind, title, detail);
        return;
      }
      const answer = await response.json();
      state.faces = answer.faces;
      state.image = answer.image;
      state.version = answer.model.version;
      if (!keepFace) state.current = 0;
      if (!answer.faces.length) {
        showMessage("no-face", "No face found in this photo.", "Try a photo where faces are larger, lit and facing the camera.");
        return;
      }
      const n = answer.faces.length;
      let summary = n === 1 ? "Found 1 face." : "Found " + n + " faces.";
      if (answer.faces_truncated) summary += " Only the largest " + n + " were classified.";
      showMessage("ok", summary, "");
      renderResults();
    } finally {
      state.busy = false;
      ui.classify.disabled = false;
      ui.classify.textContent = "Classify";
      ui.results.removeAttribute("aria-busy");
    }
  }

  ui.classify.addEventListener("click", () => classify());

  // ---- Showing the faces ------------------------------------------------------------

  function clearResults() {
    ui.boxes.replaceChildren();
    ui.cards.replaceChildren();
    ui.results.hidden = true;
  }

  function percent(p) {
    return (p * 100).toFixed(p >= 0.995 || p < 0.001 ? 0 : 1) + "%";
  }

  function renderResults() {
    const faces = state.faces;
    ui.boxes.replaceChildren();
    ui.cards.replaceChildren();
    faces.forEach((face, i) => {
      ui.boxes.append(makeBox(face, i));
      ui.cards.append(makeCard(face, i));
    });
    ui.results.hidden = faces.length === 0;
    layoutOverlay();
    select(Math.min(state.current, faces.length - 1), false);
  }

  // A box is placed in percent of the image the service measured (after EXIF rotation,
  // as the browser shows it too), so it scales with the photo's displayed size.
  function makeBox(face, i) {
    const { width, height } = state.image;
    const box = document.createElement("button");
    box.type = "button";
    box.className = "face-box";
    box.dataset.index = String(i);
    box.dataset.label = face.label;
    box.style.setProperty("--colour", FACE_COLOURS[i % FACE_COLOURS.length]);
    box.style.left = (100 * face.box.x) / width + "%";
    box.style.top = (100 * face.box.y) / height + "%";
    box.style.width = (100 * face.box.width) / width + "%";
    box.style.height = (100 * face.box.height) / height + "%";
    // The stage clips its overflow, so a tag must not stick out of the photo: near the
    // top edge it goes below the box, and in the right half it grows leftwards.
    if (face.box.y < 0.08 * height) box.classList.add("tag-below");
    if (face.box.x + face.box.width / 2 > width / 2) box.classList.add("tag-right");
    box.setAttribute("aria-label", "Face " + (i + 1) + ": " + displayName(face.label));
    const tag = document.createElement("span");
    tag.className = "face-tag";
    tag.textContent = i + 1 + " · " + shortName(face.label);
    box.append(tag);
    box.addEventListener("click", () => select(i, true));
    return box;
  }

  function makeCard(face, i) {
    const card = document.createElement("article");
    card.className = "face-card";
    card.dataset.index = String(i);
    card.dataset.label = face.label;
    card.style.setProperty("--colour", FACE_COLOURS[i % FACE_COLOURS.length]);
    card.setAttribute("aria-label", "Face " + (i + 1) + " of " + state.faces.length);

    const head = document.createElement("div");
    head.className = "card-head";
    const info = state.classes.get(face.label);
    if (info && info.picture_url) {
      const img = document.createElement("img");
      img.className = "class-picture";
      img.src = info.picture_url;
      img.alt = "Picture of " + displayName(face.label);
      head.append(img);
    } else {
      // No picture for "unknown" (or a class without one): a neutral badge instead.
      const badge = document.createElement("div");
      badge.className = "class-picture placeholder";
      badge.setAttribute("aria-hidden", "true");
      badge.textContent = face.label === "unknown" ? "?" : shortName(face.label).charAt(0).toUpperCase();
      head.append(badge);
    }
    const titles = document.createElement("div");
    const number = document.createElement("p");
    number.className = "face-number";
    number.textContent = "Face " + (i + 1);
    const name = document.createElement("h3");
    name.className = "face-name";
    name.textContent = displayName(face.label);
    const confidence = document.createElement("p");
    confidence.className = "confidence";
    if (face.label === "unknown") {
      const best = Object.entries(face.probabilities).sort((a, b) => b[1] - a[1])[0];
      confidence.textContent = best
        ? "Closest: " + shortName(best[0]) + " at " + percent(best[1]) + ", too low to name."
        : "Not one of the known people.";
    } else {
      confidence.textContent = percent(face.confidence) + " confident";
    }
    if (face.quality === "low") confidence.textContent += " Small face: low quality.";
    titles.append(number, name, confidence);
    if (face.correction) {
      const corrected = document.createElement("p");
      corrected.className = "corrected";
      const who = shortName(face.correction.person);
      corrected.textContent =
        face.correction.verdict === "is"
          ? "Answered by a correction: this face, or one very like it, was said to be " + who + "."
          : "Answered by a correction: this face, or one very like it, was said not to be " + who + ".";
      titles.append(corrected);
    }
    head.append(titles);
    card.append(head);

    // One bar per class, most likely first.
    const list = document.createElement("ul");
    list.className = "bars";
    list.setAttribute("aria-label", "Probability of each person");
    Object.entries(face.probabilities)
      .sort((a, b) => b[1] - a[1])
      .forEach(([id, p]) => {
        const item = document.createElement("li");
        item.className = "bar-row" + (id === face.label ? " top" : "");
        item.dataset.class = id;
        const label = document.createElement("span");
        label.className = "bar-label";
        label.textContent = shortName(id);
        const track = document.createElement("span");
        track.className = "bar-track";
        track.setAttribute("aria-hidden", "true"); // the number beside it says the same
        const fill = document.createElement("span");
        fill.className = "bar-fill";
        fill.style.width = (100 * p).toFixed(1) + "%";
        track.append(fill);
        const value = document.createElement("span");
        value.className = "bar-value";
        value.textContent = percent(p);
        item.append(label, track, value);
        list.append(item);
      });
    card.append(list);
    if (state.teacher) card.append(state.teacher.controls(face, i));
    return card;
  }

  // Show face ``i``: its card, its box highlighted, the counter. ``focusBox`` moves
  // keyboard focus to the box when the user navigated with keys or a click.
  function select(i, focusBox) {
    const n = state.faces.length;
    if (!n) return;
    state.current = ((i % n) + n) % n; // wrap both ways
    ui.cards.querySelectorAll(".face-card").forEach((card, k) => {
      card.hidden = k !== state.current;
    });
    ui.boxes.querySelectorAll(".face-box").forEach((box, k) => {
      const on = k === state.current;
      box.classList.toggle("selected", on);
      box.setAttribute("aria-pressed", on ? "true" : "false");
    });
    ui.counter.textContent = "Face " + (state.current + 1) + " of " + n;
    ui.back.disabled = n < 2;
    ui.next.disabled = n < 2;
    if (focusBox) ui.boxes.children[state.current].focus({ preventScroll: true });
  }

  ui.back.addEventListener("click", () => select(state.current - 1, false));
  ui.next.addEventListener("click", () => select(state.current + 1, false));

  // Arrow keys move between faces from anywhere on the page, except while typing.
  document.addEventListener("keydown", (event) => {
    if (!state.faces.length || event.altKey || event.ctrlKey || event.metaKey) return;
    const tag = (event.target.tagName || "").toLowerCase();
    if (tag === "textarea" || (tag === "input" && event.target.type !== "file")) return;
    const onBox = event.target.classList && event.target.classList.contains("face-box");
    // Only left and right: up, down, Home and End keep scrolling the page.
    if (event.key === "ArrowRight") {
      event.preventDefault();
      select(state.current + 1, onBox);
    } else if (event.key === "ArrowLeft") {
      event.preventDefault();
      select(state.current - 1, onBox);
    }
  });

  // ---- Keeping the boxes on the photo -------------------------------------------------

  // The overlay is sized to the photo as displayed; the boxes inside it use percent.
  function layoutOverlay() {
    const img = ui.photo;
    ui.boxes.style.left = img.offsetLeft + "px";
    ui.boxes.style.top = img.offsetTop + "px";
    ui.boxes.style.width = img.clientWidth + "px";
    ui.boxes.style.height = img.clientHeight + "px";
  }

  if ("ResizeObserver" in window) new ResizeObserver(layoutOverlay).observe(ui.photo);
  window.addEventListener("resize", layoutOverlay);

  // Where the trainer is, if anywhere: then each card offers to correct its answer.
  async function loadPageSettings() {
    try {
      const settings = await (await fetch("/page-settings")).json();
      state.teacher = window.createTeacher
        ? window.createTeacher({
            trainerUrl: settings.trainer_url,
            file: () => state.file,
            version: () => state.version,
            classes: () => state.classes,
            shortName,
            authHeaders,
            loadModel,
            classify: () => classify(true),
            say: showMessage,
          })
        : null;
      if (state.faces.length) renderResults();
    } catch (_) {
      state.teacher = null; // an older service without the route: no corrections
    }
  }

  loadModel();
  loadPageSettings();
})();
