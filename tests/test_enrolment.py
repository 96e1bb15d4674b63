"""Enrolment end to end: the trainer's API over HTTP builds real versions the classify service swaps in.

Real photos of the shared folders (a few per person, so the module stays quick), real
composites and broken files made here, real models fitted by the training package, and
the real classify app following ``LATEST``. Deletion is checked by looking for the erased
person's embedding bytes in every file under the artifacts and the store (zip members
inflated), after first checking the same search finds them while the person is enrolled.
"""

from __future__ import annotations

import io
import json
import os
import random
import subprocess
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.artifact.manifest import LATEST, load_manifest, resolve_version_dir
from app.config import Settings
from app.labelled.folders import IMAGE_SUFFIXES
from app.main import create_app
from app.model.unknown import l2_normalise
from enrolment.api import create_enrolment_app
from enrolment.settings import EnrolmentSettings
from enrolment.store import Store
from enrolment.versions import check_published, seed
from harness.trainer import kill_mid_change, trainer_env, wait_built
from tests.conftest import ARTIFACTS, LabelledPhoto, wait_ready
from tests.fresh_python import run_module
from tests.images import encode, no_face_image, side_by_side
from tests.server import running_server

pytestmark = pytest.mark.slow

KEY = "enrolment-test-key"
AUTH = {"X-API-Key": KEY}
PEOPLE = ("billy_boyd", "elijah_wood", "sean_astin")
NEWCOMER = "martin_freeman"
PHOTOS_EACH = 5


def trainer_settings(root: Path, **overrides) -> EnrolmentSettings:
    values = {
        "store_dir": root / "store",
        "artifacts_dir": root / "artifacts",
        "api_key": KEY,
        "wait_s": 120.0,
    }
    return EnrolmentSettings(_env_file=None, **(values | overrides))


@pytest.fixture(scope="module")
def training_photos(data_dir: Path, held_out: list[LabelledPhoto]) -> dict[str, list[Path]]:
    """A few photos per person, none of them the default model's held-out photos."""
    test = {p.path for p in held_out}
    return {
        person: sorted(
            p for p in (data_dir / person).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p not in test
        )[:PHOTOS_EACH]
        for person in (*PEOPLE, NEWCOMER)
    }


def files(paths: list[Path]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in paths]


def create(client, person: str) -> None:
    response = client.post("/v1/people", data={"id": person, "name": person.replace("_", " ").title()})
    assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("enrolment")


@pytest.fixture(scope="module")
def trainer(workdir: Path) -> Iterator[TestClient]:
    app = create_enrolment_app(trainer_settings(workdir))
    with TestClient(app, headers=AUTH, raise_server_exceptions=False) as client:
        wait_ready(client)
        yield client


@pytest.fixture(scope="module")
def classify(workdir: Path, trainer: TestClient, first_version: str) -> Iterator[TestClient]:
    """The classify service on the trainer's artifacts, following LATEST every 0.2 s."""
    settings = Settings(_env_file=None, artifacts_dir=workdir / "artifacts", model_watch_interval_s=0.2)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        wait_ready(client)
        yield client


@pytest.fixture(scope="module")
def first_version(trainer: TestClient, training_photos: dict[str, list[Path]]) -> str:
    """Three people enrolled; the first request also carries a composite, a blank and a broken file."""
    for person in PEOPLE:
        create(trainer, person)
    a, b = (LabelledPhoto(p, training_photos[p][0]).rgb for p in PEOPLE[:2])
    extras = [
        ("files", ("two.jpg", encode(side_by_side(a, b)), "image/jpeg")),
        ("files", ("blank.png", encode(no_face_image(), "PNG"), "image/png")),
        ("files", ("broken.jpg", b"\xff\xd8\xff\xe0 not really a jpeg", "image/jpeg")),
    ]
    response = trainer.post(
        f"/v1/people/{PEOPLE[0]}/photos", files=files(training_photos[PEOPLE[0]]) + extras
    )
    assert response.status_code == 200, response.text
    outcomes = {r["filename"]: r["outcome"] for r in response.json()["photos"]}
    assert outcomes["two.jpg"] == "several_faces"
    assert outcomes["blank.png"] == "no_face"
    assert outcomes["broken.jpg"] == "unreadable"
    assert list(outcomes.values()).count("face_used") + list(outcomes.values()).count("several_faces") >= 5
    for person in PEOPLE[1:]:
        response = trainer.post(f"/v1/people/{person}/photos", files=files(training_photos[person]))
        assert response.status_code == 200, response.text
    build = response.json()["build"]
    assert build["status"] == "done", build
    return build["version"]


def model_version(classify: TestClient | httpx.Client) -> str | None:
    """The version a classify service answers with (None while it has none)."""
    response = classify.get("/v1/models")
    return response.json()["version"] if response.status_code == 200 else None


def wait_for_version(classify: TestClient | httpx.Client, version: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while model_version(classify) != version:
        assert time.monotonic() < deadline, f"classify still serves {model_version(classify)}, not {version}"
        time.sleep(0.1)


def label_of(classify: TestClient, photo: LabelledPhoto) -> tuple[str, str]:
    response = classify.post("/v1/classify", files={"file": ("p.jpg", photo.path.read_bytes(), "image/jpeg")})
    assert response.status_code == 200, response.text
    body = response.json()
    return body["faces"][0]["label"], body["model"]["version"]


def test_enrolment_is_refused_without_api_key(tmp_path: Path) -> None:
    app = create_enrolment_app(trainer_settings(tmp_path, api_key=None))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/v1/people", headers=AUTH)
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/problem+json"
        assert "API_KEY" in response.json()["detail"]
    app = create_enrolment_app(trainer_settings(tmp_path))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/v1/people").status_code == 401
        assert client.get("/v1/people", headers={"X-API-Key": "wrong"}).status_code == 401
        assert client.get("/v1/people", headers=AUTH).status_code == 200


def test_enrolled_people_are_classified_by_the_published_version(
    classify: TestClient, first_version: str, single_face_photos: list[LabelledPhoto], workdir: Path
) -> None:
    manifest = load_manifest(resolve_version_dir(workdir / "artifacts", "svm"))
    assert manifest.version == first_version
    assert manifest.class_ids == sorted(PEOPLE)
    photo = next(p for p in single_face_photos if p.label == PEOPLE[1])
    assert label_of(classify, photo) == (PEOPLE[1], first_version)


def test_a_new_person_goes_live_in_the_running_classify_service(
    trainer: TestClient,
    classify: TestClient,
    training_photos: dict[str, list[Path]],
    single_face_photos: list[LabelledPhoto],
) -> None:
    create(trainer, NEWCOMER)
    response = trainer.post(f"/v1/people/{NEWCOMER}/photos", files=files(training_photos[NEWCOMER]))
    assert response.status_code == 200, response.text
    version = response.json()["build"]["version"]
    wait_for_version(classify, version)
    photo = next(p for p in single_face_photos if p.label == NEWCOMER)
    assert label_of(classify, photo) == (NEWCOMER, version)
    listed = trainer.get("/v1/people").json()
    assert {p["id"] for p in listed["people"]} == {*PEOPLE, NEWCOMER}
    assert listed["version"] == version


def test_removing_a_photo_builds_a_version_without_it(trainer: TestClient, workdir: Path) -> None:
    photos = trainer.get(f"/v1/people/{PEOPLE[2]}").json()["photos"]
    response = trainer.delete(f"/v1/people/{PEOPLE[2]}/photos/{photos[0]['id']}")
    assert response.status_code == 200, response.text
    version = response.json()["build"]["version"]
    manifest = load_manifest(workdir / "artifacts" / "svm" / version)
    assert manifest.dataset["photos"] == manifest.dataset["train_photos"]
    assert len(trainer.get(f"/v1/people/{PEOPLE[2]}").json()["photos"]) == len(photos) - 1
    assert trainer.delete(f"/v1/people/{PEOPLE[2]}/photos/{photos[0]['id']}").status_code == 404


def test_bad_requests_are_problems(trainer: TestClient, training_photos: dict[str, list[Path]]) -> None:
    one = files(training_photos[PEOPLE[0]][:1])
    cases = [
        (trainer.post("/v1/people", data={"id": "Not Valid", "name": "x"}), 422),
        (trainer.post("/v1/people", data={"id": "unknown", "name": "x"}), 422),
        (trainer.post("/v1/people", data={"id": PEOPLE[0], "name": "again"}), 409),
        (trainer.post("/v1/people", data={"id": "no-name"}), 422),
        (trainer.post("/v1/people/nobody/photos", files=one), 404),
        (trainer.post(f"/v1/people/{PEOPLE[0]}/photos", files=one * 21), 413),
        (trainer.post("/v1/people/bulk", files={"file": ("a.zip", b"not a zip", "application/zip")}), 400),
        (trainer.delete("/v1/people/nobody"), 404),
        (trainer.get("/v1/builds/999999"), 404),
    ]
    for response, status in cases:
        assert response.status_code == status, (response.request.url, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    again = trainer.post(f"/v1/people/{PEOPLE[0]}/photos", files=one)
    assert [r["outcome"] for r in again.json()["photos"]] == ["duplicate"]
    assert again.json()["build"] is None


def test_bulk_zip_gives_a_result_per_file(trainer: TestClient, data_dir: Path) -> None:
    buffer = io.BytesIO()
    photos = sorted((data_dir / "dominic_monaghan").iterdir())[:2]
    with zipfile.ZipFile(buffer, "w") as archive:
        for photo in photos:
            archive.write(photo, f"export/dominic_monaghan/{photo.name}")
        archive.writestr("export/dominic_monaghan/notes.txt", "not a photo")
        archive.writestr("export/.DS_Store", "junk")
        archive.writestr("export/classes.json", '{"dominic_monaghan": {"name": "Dominic Monaghan"}}')
    upload = {"file": ("people.zip", buffer.getvalue(), "application/zip")}
    response = trainer.post("/v1/people/bulk", files=upload)
    assert response.status_code == 200, response.text
    outcomes = sorted(r["outcome"] for r in response.json()["photos"])
    assert outcomes == ["face_used", "face_used", "skipped", "skipped"]
    assert trainer.get("/v1/people/dominic_monaghan").json()["name"] == "Dominic Monaghan"
    assert "dominic_monaghan" in load_manifest_of(trainer, response.json()["build"]["version"]).class_ids


def load_manifest_of(trainer: TestClient, version: str):
    settings = trainer.app.state.settings
    return load_manifest(settings.artifacts_dir / settings.backend / version)


def embedding_patterns(store: Store, person: str) -> list[bytes]:
    """The person's face embeddings as they are written: raw float32 (cache), unit float32 (references)."""
    from training.cache import EmbeddingCache

    entries = EmbeddingCache.entries(store.cache_dir)
    patterns = []
    for photo in store.person(person).photos:
        for path in entries[photo.sha256]:
            with np.load(path) as arrays:
                rows = arrays["features"].astype(np.float32)
            patterns += [row.tobytes() for row in rows]
            patterns += [row.tobytes() for row in l2_normalise(rows).astype(np.float32)]
    return patterns


def files_holding(root: Path, patterns: list[bytes]) -> list[str]:
    """Every file under ``root`` (zip members inflated) that holds any of ``patterns``."""
    found = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        blobs = [path.read_bytes()]
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                blobs += [archive.read(name) for name in archive.namelist()]
        if any(p in blob for blob in blobs for p in patterns):
            found.append(str(path.relative_to(root)))
    return found


def test_deleting_a_person_leaves_no_embedding_of_them(
    trainer: TestClient, classify: TestClient, workdir: Path
) -> None:
    store: Store = trainer.app.state.enrolment.store
    person = PEOPLE[1]
    patterns = embedding_patterns(store, person)
    before = files_holding(workdir, patterns)
    assert any(name.startswith("store/cache/") for name in before), before
    assert any(name.endswith("references.npy") for name in before), before
    response = trainer.delete(f"/v1/people/{person}")
    assert response.status_code == 200, response.text
    assert response.json()["photos"] == PHOTOS_EACH
    version = response.json()["build"]["version"]
    assert files_holding(workdir, patterns) == []
    for folder in (workdir / "artifacts" / "svm").iterdir():
        if folder.name != LATEST:
            assert person not in load_manifest(folder).class_ids
    assert trainer.get(f"/v1/people/{person}").status_code == 404
    assert store.check() == []
    wait_for_version(classify, version)


def test_concurrent_enrolments_are_all_in_the_final_version_which_every_replica_serves(
    tmp_path: Path, training_photos: dict[str, list[Path]]
) -> None:
    """Six people enrolled at once against a real uvicorn trainer: none lost, no error; two
    classify replicas (real processes, started before any model exists) both go live on it."""
    people = [f"{person}-{n}" for person in (*PEOPLE, NEWCOMER)[:3] for n in (1, 2)]
    env = trainer_env(trainer_settings(tmp_path))
    replica_env = {"ARTIFACTS_DIR": str(tmp_path / "artifacts"), "MODEL_WATCH_INTERVAL_S": "0.5"}
    with (
        running_server(tmp_path / "replica-1.log", wait_for="/livez", **replica_env) as first,
        running_server(tmp_path / "replica-2.log", wait_for="/livez", **replica_env) as second,
        running_server(tmp_path / "trainer.log", module="enrolment", **env) as base,
    ):

        def enrol(person: str) -> int:
            with httpx_client(base) as client:
                create(client, person)
                photos = training_photos[person.rsplit("-", 1)[0]][:2]
                return client.post(f"/v1/people/{person}/photos", files=files(photos)).status_code

        with ThreadPoolExecutor(len(people)) as pool:
            statuses = list(pool.map(enrol, people))
        assert statuses == [200] * len(people)
        with httpx_client(base) as client:
            version = client.get("/v1/people").json()["version"]
        for replica in (first, second):
            with httpx_client(replica) as client:
                wait_for_version(client, version)
    manifest = load_manifest(tmp_path / "artifacts" / "svm" / version)
    assert manifest.class_ids == sorted(people)


def httpx_client(base: str) -> httpx.Client:
    return httpx.Client(base_url=base, headers=AUTH, timeout=300)


def test_kill_9_mid_change_leaves_a_complete_version_and_a_consistent_store(
    tmp_path: Path, training_photos: dict[str, list[Path]]
) -> None:
    """A real trainer killed at random moments of an enrolment (intake, commit, fit, publish)."""
    settings = trainer_settings(tmp_path)
    env = trainer_env(settings)
    with (
        running_server(tmp_path / "first.log", module="enrolment", **env) as base,
        httpx_client(base) as client,
    ):
        for person in PEOPLE[:2]:
            create(client, person)
            response = client.post(f"/v1/people/{person}/photos", files=files(training_photos[person][:3]))
            assert response.status_code == 200, response.text
    store = Store(settings.store_dir, settings.max_people)
    backend_dir = settings.artifacts_dir / "svm"
    for n, moment in enumerate(("anywhere", "committed", "half-written")):
        start = store.revision()
        after, delay = {
            "anywhere": (None, random.Random(7).uniform(0.3, 2.5)),  # intake, commit, fit or publish
            "committed": (lambda: store.revision() > start, 0.2),  # mid-build  # noqa: B023
            "half-written": (lambda: any(backend_dir.glob(".tmp-*")), 0.0),  # a version being written
        }[moment]
        photos = [(p.name, p.read_bytes()) for p in training_photos[PEOPLE[2 - n % 2]][:3]]
        outcome = kill_mid_change(settings, f"killed-{n}", photos, delay, tmp_path / f"{n}.log", after)
        assert outcome.problems == [], outcome
    assert list(backend_dir.glob(".tmp-*")), "the last kill should have left a hidden half-written version"
    with running_server(tmp_path / "after.log", module="enrolment", **env) as base:
        assert wait_built(base, settings)["status"] == "done"
    store = Store(settings.store_dir, settings.max_people)
    assert store.leftovers() == []
    assert store.check() == []
    assert check_published(settings) == []
    assert not list((settings.artifacts_dir / "svm").glob(".*"))


def test_an_empty_artifacts_folder_is_seeded_once_with_the_default_model(tmp_path: Path) -> None:
    settings = trainer_settings(tmp_path, seed_dir=ARTIFACTS)
    committed = resolve_version_dir(ARTIFACTS, "svm").name
    assert seed(settings) == committed
    assert resolve_version_dir(settings.artifacts_dir, "svm").name == committed
    assert check_published(settings) == []
    (settings.artifacts_dir / "svm" / LATEST).write_text("elsewhere\n")
    assert seed(settings) is None  # never again: the folder is the trainer's from now on


def test_compose_gives_the_trainer_the_volumes_and_the_api_a_read_only_view() -> None:
    import yaml

    compose = yaml.safe_load((ARTIFACTS.parent / "docker-compose.yml").read_text())
    api, trainer = compose["services"]["api"], compose["services"]["trainer"]
    assert "models:/artifacts:ro" in api["volumes"]
    assert api["depends_on"]["trainer"]["condition"] == "service_healthy"
    assert {"models:/artifacts", "enrolment:/data"} <= set(trainer["volumes"])
    assert {"models", "enrolment"} <= set(compose["volumes"])
    assert trainer["command"][:3] == ["python", "-m", "enrolment"]
    assert trainer["environment"]["ENROL_STORE_DIR"].startswith("/data/")
    assert trainer["read_only"] and trainer["cap_drop"] == ["ALL"]
    # The api's page sends corrections to the trainer where the browser reaches it, from an origin
    # the trainer allows.
    assert api["environment"]["TRAINER_URL"] == "http://127.0.0.1:${TRAINER_PORT:-8100}"
    assert trainer["ports"] == ["127.0.0.1:${TRAINER_PORT:-8100}:8100"]
    allowed = trainer["environment"]["ENROL_ALLOWED_ORIGINS"].split(",")
    assert "http://127.0.0.1:${HOST_PORT:-8000}" in allowed and api["ports"] == [
        "127.0.0.1:${HOST_PORT:-8000}:8000"
    ]


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return run_module("enrolment", *args, timeout=300, env=os.environ | env)


def test_import_a_folder_then_check_and_bad_input_is_one_line(
    tmp_path: Path, training_photos: dict[str, list[Path]]
) -> None:
    folder = tmp_path / "people"
    for person in PEOPLE[:2]:
        (folder / person).mkdir(parents=True)
        for photo in training_photos[person][:2]:
            (folder / person / photo.name).symlink_to(photo)
    env = trainer_env(trainer_settings(tmp_path))
    done = run_cli("import", str(folder), env=env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["files"] == 4 and summary["error"] is None
    assert load_manifest(tmp_path / "artifacts" / "svm" / summary["version"]).class_ids == list(PEOPLE[:2])
    checked = run_cli("check", env=env)
    assert (checked.returncode, checked.stdout) == (0, "")
    for args in (("import", str(tmp_path / "missing")), ("serve", "--port", "x")):
        bad = run_cli(*args, env=env)
        assert bad.returncode == 2, (args, bad.stderr)
        assert bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1, bad.stderr


def test_a_picture_travels_into_the_artifact_and_a_bad_one_is_refused(
    trainer: TestClient, first_version: str, training_photos: dict[str, list[Path]]
) -> None:
    picture = training_photos[NEWCOMER][-1].read_bytes()
    response = trainer.post(
        "/v1/people", data={"id": "pictured", "name": "Pictured"}, files={"picture": ("p.jpg", picture)}
    )
    assert response.status_code == 201, response.text
    assert response.json()["person"]["has_picture"] is True
    added = trainer.post("/v1/people/pictured/photos", files=files(training_photos[NEWCOMER][:2]))
    manifest = load_manifest_of(trainer, added.json()["build"]["version"])
    assert next(c for c in manifest.classes if c.id == "pictured").picture == "class-pictured.jpg"
    not_a_photo = {"picture": ("p.jpg", b"no")}
    bad = trainer.post("/v1/people", data={"id": "bad-picture", "name": "x"}, files=not_a_photo)
    assert bad.status_code == 415 and bad.headers["content-type"] == "application/problem+json"
    assert trainer.delete("/v1/people/pictured").status_code == 200


def test_people_per_model_limit(tmp_path: Path, training_photos: dict[str, list[Path]]) -> None:
    app = create_enrolment_app(trainer_settings(tmp_path, max_people=1))
    with TestClient(app, headers=AUTH, raise_server_exceptions=False) as client:
        create(client, PEOPLE[0])
        refused = client.post("/v1/people", data={"id": PEOPLE[1], "name": "Two"})
        assert refused.status_code == 409 and "ENROL_MAX_PEOPLE" in refused.json()["detail"]
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.write(training_photos[PEOPLE[1]][0], f"{PEOPLE[1]}/a.jpg")
        bulk = client.post("/v1/people/bulk", files={"file": ("z.zip", buffer.getvalue(), "application/zip")})
        assert bulk.status_code == 200, bulk.text
        (result,) = bulk.json()["photos"]
        assert result["outcome"] == "skipped" and "ENROL_MAX_PEOPLE" in result["detail"]
        assert bulk.json()["build"] is None
