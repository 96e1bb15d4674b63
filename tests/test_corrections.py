"""A trainer that starts from the served model's people, learns from corrected answers, and whose
erasures reach every replica: real photos, real builds, the real classify app following LATEST.

Two stores: a first trainer enrols three people from five photos each and publishes a version;
a second trainer, new, is seeded with that version (``ENROL_SEED_DIR``) and adopts its people.
Corrections go to the second: faces of people the model does not know (martin_freeman,
dominic_monaghan) are the strangers it names wrongly or calls unknown.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.artifact.file_names import CORRECTIONS, MANIFEST, REFERENCE_LABELS
from app.artifact.manifest import LATEST, load_manifest, resolve_version_dir
from app.config import Settings
from app.labelled.folders import IMAGE_SUFFIXES, scan
from app.main import create_app
from enrolment.adoption import LABELLED_BY_CLASSIFIER, LABELLED_BY_FILE, adopted_people
from enrolment.api import create_enrolment_app
from enrolment.settings import EnrolmentSettings
from enrolment.store import Store
from tests.conftest import ARTIFACTS, LabelledPhoto, wait_ready
from tests.server import NO_WAIT_ESTIMATE, running_server
from tests.test_enrolment import AUTH, create, files, files_holding, trainer_settings, wait_for_version
from training.split import plan_evaluation

pytestmark = pytest.mark.slow

KNOWN = ("billy_boyd", "elijah_wood", "sean_astin")
STRANGERS = ("martin_freeman", "dominic_monaghan")
PHOTOS_EACH = 5


def trainer(settings: EnrolmentSettings) -> TestClient:
    return TestClient(create_enrolment_app(settings), headers=AUTH, raise_server_exceptions=False)


@pytest.fixture(scope="module")
def photos(data_dir: Path, held_out: list[LabelledPhoto]) -> dict[str, list[Path]]:
    """Every shared photo per person, the default model's held-out photos last."""
    test = {p.path for p in held_out}
    return {
        person: sorted(
            (p for p in (data_dir / person).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES),
            key=lambda p: (p in test, p.name),
        )
        for person in (*KNOWN, *STRANGERS)
    }


@pytest.fixture(scope="module")
def seed_root(tmp_path_factory: pytest.TempPathFactory, photos: dict[str, list[Path]]) -> Path:
    """An artifacts folder whose LATEST version a first trainer built: three people, five photos each."""
    root = tmp_path_factory.mktemp("seed")
    with trainer(trainer_settings(root)) as client:
        wait_ready(client)
        for person in KNOWN:
            create(client, person)
            response = client.post(f"/v1/people/{person}/photos", files=files(photos[person][:PHOTOS_EACH]))
            assert response.status_code == 200, response.text
        assert response.json()["build"]["status"] == "done"
    return root / "artifacts"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("corrections")


@pytest.fixture(scope="module")
def seeded(workdir: Path, seed_root: Path) -> Iterator[TestClient]:
    """A new trainer, seeded with the first trainer's version."""
    with trainer(trainer_settings(workdir, seed_dir=seed_root)) as client:
        wait_ready(client)
        yield client


def classify_service(workdir: Path, unknown_threshold: float | None = None) -> Iterator[TestClient]:
    settings = Settings(
        _env_file=None,
        artifacts_dir=workdir / "artifacts",
        model_watch_interval_s=0.2,
        max_queue_wait_s=float(NO_WAIT_ESTIMATE["MAX_QUEUE_WAIT_S"]),  # 16 photos at once, on a busy machine
        unknown_threshold=unknown_threshold,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        wait_ready(client)
        yield client


@pytest.fixture(scope="module")
def classify(workdir: Path, seeded: TestClient) -> Iterator[TestClient]:
    yield from classify_service(workdir)


@pytest.fixture
def naming_everyone(workdir: Path, seeded: TestClient) -> Iterator[TestClient]:
    """The same models served without the unknown rule (``UNKNOWN_THRESHOLD=2``: no cosine distance
    is larger), so a stranger is named as someone: what a "not P" correction is for."""
    yield from classify_service(workdir, unknown_threshold=2.0)


def answer(classify: TestClient | httpx.Client, photo: Path) -> dict:
    response = classify.post("/v1/classify", files={"file": (photo.name, photo.read_bytes(), "image/jpeg")})
    assert response.status_code == 200, response.text
    return response.json()


def largest(body: dict) -> dict:
    return max(body["faces"], key=lambda f: f["box"]["width"] * f["box"]["height"])


def correct(trainer: TestClient, photo: Path, face: dict, person: str, verdict: str, **extra: str):
    box = {k: str(v) for k, v in face["box"].items()}
    return trainer.post(
        "/v1/corrections",
        files={"file": (photo.name, photo.read_bytes(), "image/jpeg")},
        data={"person_id": person, "verdict": verdict, "answered": face["label"], **box, **extra},
    )


def live(classify: TestClient, response) -> str:
    """The version a change built, once the classify service serves it."""
    assert response.status_code == 200, response.text
    build = response.json()["build"]
    assert build["status"] == "done", build
    wait_for_version(classify, build["version"])
    return build["version"]


def test_a_new_store_adopts_the_served_versions_people(
    seeded: TestClient, seed_root: Path, workdir: Path
) -> None:
    listed = seeded.get("/v1/people").json()
    served = resolve_version_dir(seed_root, "svm").name
    assert listed["version"] == served and listed["blocked"] is None
    assert [p["id"] for p in listed["people"]] == list(KNOWN)
    for person in listed["people"]:
        assert person["photos"] == [] and person["seeded"]["version"] == served
        assert person["seeded"]["references"] == PHOTOS_EACH
        assert person["seeded"]["labelled_by"] == LABELLED_BY_FILE
        assert "cannot be re-embedded" in person["note"] and "\n" not in person["note"]
    # Adopting changed nothing that is served: no build, LATEST still names the seed version.
    assert (workdir / "artifacts" / "svm" / LATEST).read_text().strip() == served


def without_reference_labels(artifacts: Path, into: Path) -> Path:
    """A copy of ``artifacts`` whose svm version stores no reference labels, as every version
    trained before corrections were (issue 29): its manifest lists no such file."""
    shutil.copytree(artifacts, into)
    version_dir = resolve_version_dir(into, "svm")
    (version_dir / REFERENCE_LABELS).unlink()
    manifest = json.loads((version_dir / MANIFEST).read_text())
    del manifest["files"][REFERENCE_LABELS]
    (version_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return into


def test_a_version_without_reference_labels_is_adopted_with_its_training_faces_labels(
    tmp_path: Path, data_dir: Path
) -> None:
    """A version that stores no reference labels: its own classifier names each reference, and
    that naming is the training split's, face for face, as the labels the committed one stores."""
    seed_dir = without_reference_labels(ARTIFACTS, tmp_path / "seed")
    version_dir = resolve_version_dir(seed_dir, "svm")
    manifest = load_manifest(version_dir)
    assert REFERENCE_LABELS not in manifest.files
    stored = np.load(resolve_version_dir(ARTIFACTS, "svm") / REFERENCE_LABELS, allow_pickle=False)
    people = adopted_people(version_dir, manifest)
    plan = plan_evaluation(
        scan(data_dir).photos, manifest.dataset["test_size"], manifest.dataset["split_seed"]
    )
    split = np.array([p.label for p in plan.train])
    assert {p.id: p.seeded.count for p in people} == dict(
        zip(*np.unique(split, return_counts=True), strict=True)
    )
    references = np.load(version_dir / "references.npy")
    assert np.array_equal(stored, split)
    for person in people:
        assert np.array_equal(person.references, references[split == person.id])
        assert person.seeded.labelled_by == LABELLED_BY_CLASSIFIER
        assert person.picture is not None
    with trainer(trainer_settings(tmp_path, seed_dir=seed_dir)) as client:
        wait_ready(client)
        listed = client.get("/v1/people").json()
        assert listed["version"] == version_dir.name
        assert {p["id"]: p["has_picture"] for p in listed["people"]} == dict.fromkeys(
            manifest.class_ids, True
        )
    with trainer(trainer_settings(tmp_path, seed_dir=seed_dir)) as client:  # a restart adopts nothing again
        wait_ready(client)
        assert client.delete(f"/v1/people/{manifest.class_ids[0]}").status_code == 200
    with trainer(trainer_settings(tmp_path, seed_dir=seed_dir)) as client:
        wait_ready(client)
        assert [p["id"] for p in client.get("/v1/people").json()["people"]] == manifest.class_ids[1:]


def test_enrolling_someone_adds_to_the_adopted_people(
    seeded: TestClient, classify: TestClient, photos: dict[str, list[Path]]
) -> None:
    newcomer = STRANGERS[1]
    create(seeded, newcomer)
    response = seeded.post(f"/v1/people/{newcomer}/photos", files=files(photos[newcomer][:PHOTOS_EACH]))
    version = live(classify, response)
    assert [c["id"] for c in classify.get("/v1/models").json()["classes"]] == sorted((*KNOWN, newcomer))
    for person in (*KNOWN, newcomer):
        body = answer(classify, photos[person][-1])  # a photo none of the builds trained on
        assert (largest(body)["label"], body["model"]["version"]) == (person, version)


def test_not_p_stops_p_for_that_face_and_another_photo_of_the_same_person(
    seeded: TestClient, naming_everyone: TestClient, photos: dict[str, list[Path]], workdir: Path
) -> None:
    """A stranger the model names P in several photos: one "not P" correction, and P is no longer
    given to that face, nor to another photo of the same person; P's own photos stay P.

    The unknown rule is off for this (``naming_everyone``): with it, the strangers' photos are
    answered "unknown" rather than named, too often to find one named P twice."""
    classify = naming_everyone
    named: dict[tuple[str, str], list[tuple[Path, dict]]] = {}
    for stranger in STRANGERS[:1]:
        for photo in photos[stranger][:-1]:  # the last is for the next test
            face = largest(answer(classify, photo))
            if face["label"] not in ("unknown", stranger):
                named.setdefault((stranger, face["label"]), []).append((photo, face))
    (stranger, p), cases = max(named.items(), key=lambda item: len(item[1]))
    assert len(cases) >= 2, f"a stranger named the same person in two photos is needed: {named}"
    (photo, face), others = cases[0], cases[1:]
    version = live(classify, correct(seeded, photo, face, p, "is_not", model_version="whatever"))
    after = largest(answer(classify, photo))
    assert after["label"] == "unknown" and after["correction"] == {"verdict": "is_not", "person": p}
    still = [largest(answer(classify, other))["label"] for other, _ in others]
    assert still.count(p) < len(others), f"every other photo of {stranger} is still {p}"
    assert largest(answer(classify, photos[p][-1]))["label"] == p
    # The served corrections are read by every inference thread at once: the same answers.
    queries = [photo, photos[p][-1]] * 8
    with ThreadPoolExecutor(8) as pool:
        labels = list(pool.map(lambda q: largest(answer(classify, q))["label"], queries))
    assert labels == ["unknown", p] * 8
    manifest = load_manifest(workdir / "artifacts" / "svm" / version)
    assert CORRECTIONS in manifest.files and manifest.dataset["corrections"]["is_not"] == 1
    (negative,) = seeded.get(f"/v1/people/{p}").json()["negatives"]
    assert (negative["answered"], negative["model_version"], negative["box"]) == (p, "whatever", face["box"])
    live(classify, seeded.delete(negative["undo"]))
    assert largest(answer(classify, photo))["label"] == p


def test_a_correction_gives_the_corrected_face_its_answer(
    seeded: TestClient, classify: TestClient, photos: dict[str, list[Path]]
) -> None:
    """A stranger's face (named wrongly or unknown) said to be someone new; then a known person's
    face said to be someone else, which the classifier alone would still not answer."""
    stranger = photos[STRANGERS[0]][-1]
    face = largest(answer(classify, stranger))
    assert face["label"] != STRANGERS[0]
    response = correct(seeded, stranger, face, STRANGERS[0], "is", name="Martin Freeman")
    assert response.json()["person_created"] is True
    version = live(classify, response)
    after = largest(answer(classify, stranger))
    assert after["label"] == STRANGERS[0]
    assert after["correction"] == {"verdict": "is", "person": STRANGERS[0]}
    assert classify.get("/v1/models").json()["version"] == version

    photo = photos[KNOWN[2]][-1]
    face = largest(answer(classify, photo))
    assert face["label"] == KNOWN[2]
    live(classify, correct(seeded, photo, face, KNOWN[0], "is"))
    after = largest(answer(classify, photo))
    assert after["label"] == KNOWN[0] and after["correction"] == {"verdict": "is", "person": KNOWN[0]}
    audit = seeded.get(f"/v1/people/{KNOWN[0]}").json()["photos"]
    (added,) = [p for p in audit if p["source"] == "correction"]
    assert added["correction"]["answered"] == KNOWN[2] and added["correction"]["box"] == face["box"]
    undone = seeded.delete(added["correction"]["undo"])
    live(classify, undone)
    assert largest(answer(classify, photo))["label"] == KNOWN[2]


def test_bad_corrections_are_problems(
    seeded: TestClient, classify: TestClient, photos: dict[str, list[Path]]
) -> None:
    photo = photos[KNOWN[0]][-1]
    face = largest(answer(classify, photo))
    box = {k: str(v) for k, v in face["box"].items()}
    jpeg = {"file": (photo.name, photo.read_bytes(), "image/jpeg")}

    def post(data: dict, upload: dict = jpeg):
        return seeded.post("/v1/corrections", files=upload, data=data)

    cases = [
        (post({"person_id": KNOWN[0], "verdict": "maybe", **box}), 422),
        (post({"person_id": KNOWN[0], "verdict": "is", "x": "1"}), 422),
        (post({"person_id": KNOWN[0], "verdict": "is", **box, "width": "0"}), 422),
        (post({"person_id": "Not An Id", "verdict": "is", **box}), 422),
        (post({"person_id": KNOWN[0], "verdict": "is", **box, "x": "0", "y": "0", "width": "8"}), 422),
        (post({"person_id": "nobody", "verdict": "is_not", **box}), 404),
        (post({"person_id": "nobody", "verdict": "is", **box}), 404),
        (
            post({"person_id": KNOWN[0], "verdict": "is", **box}, {"file": ("a.jpg", b"text", "text/plain")}),
            415,
        ),
        (seeded.delete("/v1/corrections/nothing"), 404),
        (seeded.delete("/v1/people/nobody/seeded"), 404),
    ]
    for response, status in cases:
        assert response.status_code == status, (response.request.url, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    assert "give a name" in cases[6][0].json()["detail"]
    first = post({"person_id": KNOWN[1], "verdict": "is_not", **box})
    assert first.status_code == 200, first.text
    again = post({"person_id": KNOWN[1], "verdict": "is_not", **box})
    opposite = post({"person_id": KNOWN[1], "verdict": "is", **box})
    for response in (again, opposite):
        assert response.status_code == 409 and response.headers["content-type"] == "application/problem+json"
    assert first.json()["correction"]["id"] in opposite.json()["detail"]
    assert seeded.delete(first.json()["correction"]["undo"]).status_code == 200


def test_a_build_refuses_adopted_embeddings_made_by_other_stages(
    tmp_path: Path, seed_root: Path, photos: dict[str, list[Path]]
) -> None:
    """When the embedding changes (here: the store says the adopted faces were cropped with another
    margin), the adopted people cannot be re-embedded: the build says so in one line."""
    settings = trainer_settings(tmp_path, seed_dir=seed_root)
    with trainer(settings) as client:
        wait_ready(client)
    with sqlite3.connect(settings.store_dir / "people.sqlite3") as db:
        db.execute("""UPDATE seeded SET features = '{"name": "facenet", "params": {"margin": 0.3}}'""")
    with trainer(settings) as client:
        wait_ready(client)
        blocked = client.get("/v1/people").json()["blocked"]
        assert blocked.startswith("cannot build: ") and "\n" not in blocked
        assert all(person in blocked for person in KNOWN) and "cannot be re-embedded" in blocked
        response = client.post(f"/v1/people/{KNOWN[0]}/photos", files=files(photos[KNOWN[0]][:2]))
        assert response.json()["build"] == {**response.json()["build"], "status": "failed", "detail": blocked}
        assert client.delete(f"/v1/people/{KNOWN[0]}/seeded").status_code == 200
        for person in KNOWN[1:]:
            assert client.delete(f"/v1/people/{person}").status_code == 200
        listed = client.get("/v1/people").json()
        assert listed["blocked"] is None
        manifest = load_manifest(settings.artifacts_dir / "svm" / listed["version"])
        assert manifest.class_ids == [KNOWN[0]] and manifest.dataset["adopted_references"] == 0


def test_erasing_an_adopted_person_leaves_no_embedding_of_them(tmp_path: Path, seed_root: Path) -> None:
    """The reference embeddings a person was adopted with are in the store (SQLite) and in the
    seeded version; after the erasure, in no file under the store or the artifacts."""
    version_dir = resolve_version_dir(seed_root, "svm")
    references = np.load(version_dir / "references.npy")
    labels = np.load(version_dir / REFERENCE_LABELS)
    person = KNOWN[0]
    patterns = [row.tobytes() for row in references[labels == person].astype(np.float32)]
    with trainer(trainer_settings(tmp_path, seed_dir=seed_root)) as client:
        wait_ready(client)
        held = files_holding(tmp_path, patterns)
        assert "store/people.sqlite3" in held and f"artifacts/svm/{version_dir.name}/references.npy" in held
        erased = client.delete(f"/v1/people/{person}")
        assert erased.status_code == 200, erased.text
        assert files_holding(tmp_path, patterns) == []
        assert person not in [p["id"] for p in client.get("/v1/people").json()["people"]]


def test_erasing_the_last_person_reaches_every_replica(tmp_path: Path, photos: dict[str, list[Path]]) -> None:
    """Two classify replicas (real processes) name the one enrolled person; once the person is
    erased, both answer ``unknown`` from a version that knows nobody, with no restart."""
    settings = trainer_settings(tmp_path)
    person, query = KNOWN[1], photos[KNOWN[1]][-1]
    env = {"ARTIFACTS_DIR": str(settings.artifacts_dir), "MODEL_WATCH_INTERVAL_S": "0.5"}
    with trainer(settings) as client:
        wait_ready(client)
        create(client, person)
        built = client.post(f"/v1/people/{person}/photos", files=files(photos[person][:2])).json()["build"]
        with (
            running_server(tmp_path / "replica-1.log", **env) as first,
            running_server(tmp_path / "replica-2.log", **env) as second,
        ):
            replicas = [httpx.Client(base_url=url, timeout=60) for url in (first, second)]
            for replica in replicas:
                wait_for_version(replica, built["version"])
                assert largest(answer(replica, query))["label"] == person
            erased = client.delete(f"/v1/people/{person}")
            assert erased.status_code == 200, erased.text
            nobody = erased.json()["build"]["version"]
            for replica in replicas:
                wait_for_version(replica, nobody)
                assert replica.get("/v1/models").json()["classes"] == []
                face = largest(answer(replica, query))
                assert (face["label"], face["probabilities"]) == ("unknown", {})
                assert replica.get("/readyz").status_code == 200
    assert sorted(p.name for p in (settings.artifacts_dir / "svm").iterdir()) == [nobody, LATEST]


def test_a_store_from_before_corrections_opens_and_takes_them(tmp_path: Path) -> None:
    """A store written by the previous release (photos without the correction columns) gains them."""
    (tmp_path / "photos").mkdir()
    with sqlite3.connect(tmp_path / "people.sqlite3") as db:
        db.executescript(
            """
            CREATE TABLE people (id TEXT PRIMARY KEY, name TEXT NOT NULL, character TEXT, picture TEXT,
                                 created TEXT NOT NULL);
            CREATE TABLE photos (id TEXT PRIMARY KEY,
                                 person_id TEXT NOT NULL REFERENCES people(id) ON DELETE CASCADE,
                                 sha256 TEXT NOT NULL, filename TEXT NOT NULL, faces INTEGER NOT NULL,
                                 created TEXT NOT NULL, UNIQUE (person_id, sha256));
            INSERT INTO people VALUES ('old', 'Old', NULL, NULL, '2026-11-24T05:51:35+00:00');
            INSERT INTO photos VALUES ('p1', 'old', 'abc', 'a.jpg', 1, '2026-11-24T05:51:36+00:00');
            """
        )
    (tmp_path / "photos" / "p1").write_bytes(b"not checked here")
    store = Store(tmp_path, max_people=10)
    (person,) = store.people()
    assert [(p.id, p.source, p.correction) for p in person.photos] == [("p1", "upload", None)]
    assert person.negatives == [] and person.seeded is None and store.adoption() is None
    assert Store(tmp_path, max_people=10).id == store.id  # one id for the store, kept
