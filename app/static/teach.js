// Corrections from the classify page to the trainer (the enrolment service at TRAINER_URL).
// Under each face card: "Not right? This is …" (a person, or someone new) and "This is not …".
// The photo and the face's box go back to the trainer (POST /v1/corrections); the page then
// follows the build, waits until this service serves the new version, and classifies again.
// The trainer's API key is asked for once and kept for this tab only (sessionStorage).
"use strict";

// createTeacher(page) -> { controls(face, i) } or null when no trainer is configured.
// ``page`` gives what app.js owns: trainerUrl, the chosen file, the answer's model version,
// the model's classes, display names, loadModel() and classify() (each resolves once shown),
// and say().
window.createTeacher = function (page) {
  if (!page.trainerUrl) return null;
  const KEY = "trainerKey";
  const NEW = "__new__";
  let people = []; // the trainer's people: [{id, name}]

  function trainerKey() {
    let key = sessionStorage.getItem(KEY);
    if (!key) {
      key = (window.prompt("To teach the model, enter the trainer's API key:") || "").trim();
      if (key) sessionStorage.setItem(KEY, key);
    }
    return key;
  }

  async function trainer(method, path, body) {
    const response = await fetch(page.trainerUrl + path, {
      method,
      body,
      headers: { "X-API-Key": sessionStorage.getItem(KEY) || "" },
    });
    const data = await response.json().catch(() => ({}));
    if (response.status === 401) sessionStorage.removeItem(KEY); // asked again next time
    if (!response.ok) throw new Error(data.detail || data.title || "the trainer answered " + response.status);
    return data;
  }

  async function loadPeople() {
    if (!sessionStorage.getItem(KEY)) return;
    try {
      people = (await trainer("GET", "/v1/people")).people.map((p) => ({ id: p.id, name: p.name }));
    } catch (_) {
      people = [];
    }
  }

  // The trainer's people and the served model's, by name: who a face can be said to be.
  function choices() {
    const byId = new Map(people.map((p) => [p.id, p.name]));
    for (const c of page.classes().values()) if (!byId.has(c.id)) byId.set(c.id, c.name);
    return [...byId].map(([id, name]) => ({ id, name })).sort((a, b) => a.name.localeCompare(b.name));
  }

  // A person id from a display name, as the trainer accepts ids: lower-case letters, digits, _ . -
  function idFor(name) {
    const id = name
      .normalize("NFKD")
      .replace(/[\u0300-\u036f]/g, "")
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "_")
      .replace(/^_+|_+$/g, "")
      .slice(0, 64);
    return id && id !== "unknown" ? id : "person_" + Date.now().toString(36);
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  // Poll the build until it is done; then this service, until it serves that version or a later one
  // (the trainer names versions by UTC time first, so they sort in the order they were built).
  async function live(build, status) {
    while (build.status === "pending") {
      status("Building the new model (change " + build.revision + ")…");
      await sleep(1000);
      build = await trainer("GET", build.poll);
    }
    if (build.status === "failed") throw new Error("the build failed: " + build.detail);
    status("Model " + build.version + " is built; waiting for this service to load it…");
    for (let waited = 0; waited < 120; waited++) {
      const response = await fetch("/v1/models", { headers: page.authHeaders({}) });
      if (response.ok && (await response.json()).version >= build.version) return build.version;
      await sleep(500);
    }
    throw new Error("this service has not loaded model " + build.version + " after a minute");
  }

  async function send(face, verdict, personId, name, status, buttons) {
    if (!trainerKey()) {
      status("Teaching needs the trainer's API key.", true);
      return;
    }
    buttons.forEach((b) => (b.disabled = true));
    const form = new FormData();
    form.append("file", page.file(), page.file().name);
    form.append("person_id", personId);
    form.append("verdict", verdict);
    for (const k of ["x", "y", "width", "height"]) form.append(k, String(face.box[k]));
    if (name) form.append("name", name);
    form.append("answered", face.label);
    form.append("model_version", page.version());
    try {
      status("Sending the correction…");
      const answer = await trainer("POST", "/v1/corrections", form);
      const version = await live(answer.build, status);
      await loadPeople();
      await page.loadModel(); // a new person's name, for the answer about to be shown
      await page.classify();
      page.say("ok", "Model " + version + " is live.", "This is its answer to the photo now.");
    } catch (error) {
      status("Not taught: " + error.message, true);
      buttons.forEach((b) => (b.disabled = false));
    }
  }

  function controls(face, i) {
    const box = document.createElement("section");
    box.className = "teach";
    box.setAttribute("aria-label", "Correct face " + (i + 1));
    const note = document.createElement("p");
    note.className = "teach-status";
    note.setAttribute("role", "status");
    note.setAttribute("aria-live", "polite");
    const status = (text, isError = false) => {
      note.textContent = text;
      note.classList.toggle("error", isError);
    };

    const form = document.createElement("form");
    form.className = "teach-is";
    const label = document.createElement("label");
    label.htmlFor = "teach-person-" + i;
    label.textContent = "Not right? This is";
    const select = document.createElement("select");
    select.id = "teach-person-" + i;
    select.required = true;
    const prompt = new Option("who?", "", true, true);
    prompt.disabled = true;
    select.append(prompt);
    for (const person of choices()) {
      if (person.id === face.label) continue;
      select.append(new Option(person.name, person.id));
    }
    select.append(new Option("someone new…", NEW));
    const name = document.createElement("input");
    name.type = "text";
    name.placeholder = "their name";
    name.maxLength = 200;
    name.setAttribute("aria-label", "The new person's name");
    name.hidden = select.value !== NEW;
    select.addEventListener("change", () => {
      name.hidden = select.value !== NEW;
      if (!name.hidden) name.focus();
    });
    const teach = document.createElement("button");
    teach.type = "submit";
    teach.textContent = "Teach";
    form.append(label, select, name, teach);

    const buttons = [teach];
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const isNew = select.value === NEW;
      const given = name.value.trim();
      if (isNew && !given) {
        status("Give the new person's name.", true);
        name.focus();
        return;
      }
      send(face, "is", isNew ? idFor(given) : select.value, isNew ? given : null, status, buttons);
    });
    box.append(form);

    if (face.label !== "unknown") {
      const not = document.createElement("button");
      not.type = "button";
      not.className = "teach-not";
      not.textContent = "This is not " + page.shortName(face.label);
      not.addEventListener("click", () => send(face, "is_not", face.label, null, status, buttons));
      buttons.push(not);
      box.append(not);
    }
    box.append(note);
    return box;
  }

  loadPeople();
  return { controls };
};
