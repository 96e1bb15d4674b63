// The trainer's people page: list, add (with photos) and delete people through /v1/people.
// It says where each person's examples came from (photos, corrections, embeddings adopted from
// the served model) and why the next build would be refused, when it would.
// The API key stays in this tab (sessionStorage) and goes in the X-API-Key header.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "hobbit-api-key";

function headers() {
  return { "X-API-Key": sessionStorage.getItem(KEY) || "" };
}

function say(text, isError = false) {
  const box = $("message");
  box.textContent = text;
  box.classList.toggle("error", isError);
  box.hidden = !text;
}

async function call(method, path, body) {
  const response = await fetch(path, { method, headers: headers(), body });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(data.detail || data.title || `${response.status}`);
  }
  return data;
}

function buildLine(build) {
  if (!build) return "nothing changed";
  if (build.status === "done") return `model ${build.version} is published`;
  if (build.status === "pending") return `the new model is still building (revision ${build.revision})`;
  return `the build failed: ${build.detail}`;
}

async function refresh() {
  try {
    const data = await call("GET", "/v1/people");
    $("model-line").textContent = data.version
      ? `${data.people.length} people; model ${data.version}`
      : `${data.people.length} people; no model published yet`;
    $("blocked").textContent = data.blocked ? `The next build will be refused: ${data.blocked}` : "";
    $("blocked").hidden = !data.blocked;
    const rows = $("people");
    rows.replaceChildren();
    for (const person of data.people) {
      const row = document.createElement("tr");
      row.dataset.person = person.id;
      for (const text of [person.id, person.name, String(person.photos.length)]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.append(cell);
      }
      row.lastChild.append(...examples(person));
      const cell = document.createElement("td");
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "danger";
      remove.textContent = "Delete";
      remove.setAttribute("aria-label", `Delete ${person.name} and every photo of them`);
      remove.addEventListener("click", () => erase(person));
      cell.append(remove);
      row.append(cell);
      rows.append(row);
    }
  } catch (error) {
    $("model-line").textContent = `Cannot list people: ${error.message}`;
  }
}

// Where a person's examples came from, beside their photo count, and what to know about them.
function examples(person) {
  const parts = [];
  const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;
  const corrected = person.photos.filter((p) => p.source === "correction").length;
  if (corrected) parts.push(plural(corrected, "from a correction", "from corrections"));
  if (person.negatives.length) parts.push(plural(person.negatives.length, "face marked not them", "faces marked not them"));
  if (person.seeded) parts.push(`${person.seeded.references} embeddings adopted from ${person.seeded.version}`);
  const nodes = parts.length ? [document.createTextNode(` (${parts.join("; ")})`)] : [];
  if (person.note) {
    const note = document.createElement("span");
    note.className = "note";
    note.textContent = person.note;
    nodes.push(note);
  }
  return nodes;
}

async function erase(person) {
  if (!window.confirm(`Delete ${person.name}, their photos and every model that knows them?`)) return;
  try {
    const data = await call("DELETE", `/v1/people/${encodeURIComponent(person.id)}`);
    say(`Deleted ${person.name} (${data.photos} photos); ${buildLine(data.build)}.`);
  } catch (error) {
    say(`Could not delete ${person.name}: ${error.message}`, true);
  }
  await refresh();
}

async function add(event) {
  event.preventDefault();
  const id = $("person-id").value.trim();
  const files = $("person-photos").files;
  $("add").disabled = true;
  $("photo-results").replaceChildren();
  say("Adding…");
  try {
    const person = new FormData();
    person.append("id", id);
    person.append("name", $("person-name").value.trim());
    await call("POST", "/v1/people", person);
    const photos = new FormData();
    for (const file of files) photos.append("files", file);
    const data = await call("POST", `/v1/people/${encodeURIComponent(id)}/photos`, photos);
    for (const result of data.photos) {
      const item = document.createElement("li");
      item.className = result.photo_id ? "used" : "refused";
      item.textContent = `${result.filename}: ${result.outcome.replaceAll("_", " ")}`;
      $("photo-results").append(item);
    }
    say(`Added ${id}; ${buildLine(data.build)}.`);
    $("add-form").reset();
  } catch (error) {
    say(`Could not add ${id}: ${error.message}`, true);
  } finally {
    $("add").disabled = false;
  }
  await refresh();
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, $("api-key").value);
  refresh();
});
$("add-form").addEventListener("submit", add);
if (sessionStorage.getItem(KEY)) refresh();
