"""``python -m app cluster`` on a real archive: composites of the shared photos, made here.

The served model is trained here on three of the five hobbits (``KNOWN``), so the other two
(``STRANGERS``) are people it cannot name, to be grouped. The archive is made of the held-out
photos in which the default detector finds one face: each photo alone, and side by side with
another person's, so every stranger's faces are spread over several photos and share photos
with other people. Every face's person is known from where its photo was placed.

Checked: the groups are the strangers, one group each, and the known people are named; the
same photos renamed and in another order give the same groups; a run killed part way
resumes; a group folder renamed to a person's id trains a model and is enrolled as it is;
the Ray engine groups as the local one; bad input is one line and exit status 2.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.artifact.manifest import load_manifest, resolve_version_dir
from app.cluster import command
from app.cluster.embedding import joint_for
from app.cluster.faces import WORK, FaceJob, job_description
from app.config import PROJECT_ROOT, Settings
from app.labelled.folders import scan
from app.model.host import load_recognizer
from app.model.recognizer import UNKNOWN
from app.pipeline.detect import create_detector
from app.pipeline.features import create_extractor
from tests.conftest import ARTIFACTS, LabelledPhoto
from tests.fresh_python import run_module
from tests.images import encode, side_by_side
from tests.pictures import docs_picture
from training.cli import main as train

pytestmark = pytest.mark.slow

BLURRED = "out-of-focus.jpg"
KNOWN = ("billy_boyd", "dominic_monaghan", "martin_freeman")
STRANGERS = ("elijah_wood", "sean_astin")


@pytest.fixture(scope="module")
def artifacts(
    tmp_path_factory: pytest.TempPathFactory, data_dir: Path, held_out: list[LabelledPhoto]
) -> Path:
    """A model of ``KNOWN`` only, trained on their photos that are not held out."""
    root = tmp_path_factory.mktemp("cluster-model")
    test = {p.path for p in held_out}
    for person in KNOWN:
        (root / "data" / person).mkdir(parents=True)
        for path in [p for p in sorted((data_dir / person).glob("*.jpg")) if p not in test][:12]:
            (root / "data" / person / path.name).symlink_to(path)
    argv = ["train", "--data", str(root / "data"), "--artifacts", str(root / "artifacts"), "--backend", "svm"]
    code = train(
        [*argv, "--cache-dir", str(root / "cache"), "--quick", "--test-size", "0", "--version", "v1"]
    )
    assert code == 0
    return root / "artifacts"


def settings_for(artifacts: Path) -> Settings:
    return Settings(_env_file=None, artifacts_dir=artifacts, classifier_backend="svm")


def env_for(artifacts: Path) -> dict[str, str]:
    return {**os.environ, "ARTIFACTS_DIR": str(artifacts), "CLASSIFIER_BACKEND": "svm"}


@pytest.fixture(scope="module")
def strangers(data_dir: Path, held_out: list[LabelledPhoto]) -> list[LabelledPhoto]:
    """Seven photos of each stranger in which the detector finds one face, none of them held out.

    Photos of the committed model's training split, on which ``GROUPING_RATIO`` was measured
    to give one pure group per person: this test checks the command, the benchmark the
    grouping (bench/cluster.py, docs/clustering.md).
    """
    detector = create_detector(load_manifest(resolve_version_dir(ARTIFACTS, "svm")).detector.name)
    test = {p.path for p in held_out}
    chosen = []
    for person in STRANGERS:
        photos = [
            LabelledPhoto(person, p) for p in sorted((data_dir / person).glob("*.jpg")) if p not in test
        ]
        chosen += [p for p in photos if len(detector.detect(p.rgb)) == 1][:7]
    return chosen


@pytest.fixture(scope="module")
def archive(
    tmp_path_factory: pytest.TempPathFactory,
    strangers: list[LabelledPhoto],
    single_face_photos: list[LabelledPhoto],
) -> tuple[Path, dict[tuple[str, int], str]]:
    """The photos, and each face's person by (photo, position from the left)."""
    root = tmp_path_factory.mktemp("cluster-archive") / "photos"
    (root / "trip").mkdir(parents=True)
    known = [p for p in single_face_photos if p.label in KNOWN]
    people: dict[tuple[str, int], str] = {}

    def save(name: str, *photos: LabelledPhoto) -> None:
        image = photos[0].rgb if len(photos) == 1 else side_by_side(*(p.rgb for p in photos))
        (root / name).write_bytes(encode(image, quality=90))
        for position, photo in enumerate(photos):
            people[(name, position)] = photo.label

    for i, photo in enumerate(strangers):
        save(f"alone-{i:02d}.jpg", photo)
        partner = known[i % len(known)] if i % 2 else strangers[(i + 3) % len(strangers)]
        if partner.label != photo.label:
            save(f"trip/together-{i:02d}.jpg", photo, partner)
    for i, photo in enumerate(known[:4]):
        save(f"known-{i:02d}.jpg", photo)
    # A stranger's photo out of focus (not in ``people``: ``test_a_blurred_face_is_not_grouped``).
    (face,) = create_detector("blazeface").detect(strangers[0].rgb)
    blurred = cv2.GaussianBlur(strangers[0].rgb, (0, 0), face.box.width / 16)
    (root / BLURRED).write_bytes(encode(blurred, quality=90))
    return root, people


def person_of(row: dict, archive: tuple[Path, dict[tuple[str, int], str]]) -> str:
    """The person a row's face belongs to: its photo's part, left to right (the faces are sorted so)."""
    _, people = archive
    return people[(row["photo"], row["face"])]


def read_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "groups.jsonl").read_text().splitlines()]


def groups_of(rows: list[dict], key) -> set[frozenset]:
    found = defaultdict(set)
    for row in rows:
        if row["group"] is not None:
            found[row["group"]].add(key(row))
    return {frozenset(members) for members in found.values()}


@pytest.fixture(scope="module")
def clustered(artifacts: Path, archive, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The real command on the archive, in a fresh process: DIR and what it printed."""
    out = tmp_path_factory.mktemp("cluster-out") / "people"
    photos, _ = archive
    done = run_module("app", "cluster", str(photos), "--out", str(out), timeout=600, env=env_for(artifacts))
    assert done.returncode == 0, done.stderr
    return out, done.stdout


def test_groups_are_people_and_known_people_are_named(clustered, archive) -> None:
    """Each stranger is one group, and every group one person; the model names only its people.

    A known person's photo the model answers ``unknown`` is grouped like a stranger's.
    """
    out, printed = clustered
    rows = read_rows(out)
    _, people = archive
    assert {(r["photo"], r["face"]) for r in rows} >= set(people)  # every face placed was found
    groups: dict[str | None, list[str]] = defaultdict(list)
    for row in rows:
        if (row["photo"], row["face"]) not in people:
            continue  # a face the detector made up: no person to check it against
        person = person_of(row, archive)
        if row["label"] != "unknown":
            assert row["label"] == person and row["group"] is None, row
        else:
            groups[row["group"]].append(person)
    for name, members in groups.items():
        assert name is None or len(set(members)) == 1, f"{name} mixes {Counter(members)}"
    for stranger in STRANGERS:
        theirs = [name for name, members in groups.items() for m in members if m == stranger]
        assert len(theirs) == sum(p == stranger for p in people.values()), f"{stranger} was named"
        ((main, count),) = Counter(theirs).most_common(1)
        assert main is not None and count >= 0.6 * len(theirs), Counter(theirs)
    group_of = {(r["photo"], r["face"]): r["group"] for r in rows}
    for (photo, face), person in people.items():  # the same face, alone and beside another: one group
        if photo.startswith("trip/") and face == 0 and person in STRANGERS:
            alone = photo.replace("trip/together", "alone")
            assert group_of[(photo, 0)] == group_of[(alone, 0)] is not None, photo
    sizes = [len(v) for k, v in groups.items() if k is not None]  # in the rows' order: largest first
    assert sorted(sizes, reverse=True) == sizes
    for row in rows:
        assert (out / row["image"]).is_file()
        assert row["quality"] in {"good", "low", "blurred"} and set(row["box"]) == {
            "x",
            "y",
            "width",
            "height",
        }
        if row["group"] is not None:
            assert row["image"].startswith(f"{row['group']}/") and 0 <= row["distance"] < 1
    assert not (out / WORK).exists()
    assert f"in {len(sizes)} groups" in printed and printed.strip().endswith(str(out / "index.html"))


def test_a_blurred_face_is_not_grouped(clustered) -> None:
    """Too blurred to trust its embedding, so it stays out of its person's group, said why."""
    out, _ = clustered
    (row,) = [r for r in read_rows(out) if r["photo"] == BLURRED]
    assert row["label"] == "unknown" and row["quality"] == "blurred", row
    assert (
        row["group"] is None and row["ungrouped"] == "low quality" and row["image"].startswith("ungrouped/")
    )
    assert all(r["quality"] != "blurred" for r in read_rows(out) if r["photo"] != BLURRED)


def test_the_order_and_names_of_the_photos_do_not_change_the_groups(
    clustered, archive, artifacts: Path, tmp_path: Path
) -> None:
    """The same photos under shuffled new names, written in another order: the same groups and numbers."""
    out, _ = clustered
    photos, _ = archive
    files = sorted(p for p in photos.rglob("*.jpg"))
    names = [f"img_{i:03d}.jpg" for i in range(len(files))]
    random.Random(7).shuffle(names)
    renamed = tmp_path / "renamed"
    renamed.mkdir()
    old_name = {}
    for path, name in sorted(zip(files, names, strict=True), key=lambda pair: pair[1], reverse=True):
        shutil.copy(path, renamed / name)
        old_name[name] = path.relative_to(photos).as_posix()
    assert command.main(str(renamed), tmp_path / "again", settings_for(artifacts)) == 0
    key = lambda row: (old_name.get(row["photo"], row["photo"]), row["face"])  # noqa: E731
    first, again = read_rows(out), read_rows(tmp_path / "again")
    assert groups_of(again, key) == groups_of(first, key)
    assert {(key(r), r["group"]) for r in again} == {(key(r), r["group"]) for r in first}


def test_a_run_killed_part_way_resumes(archive, artifacts: Path, tmp_path: Path, clustered) -> None:
    """SIGKILL the command once its first part file is written; the rerun does only the rest."""
    photos, _ = archive
    out = tmp_path / "people"
    env = env_for(artifacts) | {"OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "app", "cluster", str(photos), "--out", str(out)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while not list((out / WORK).glob("part-*.npz")) and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    parts = list((out / WORK).glob("part-*.npz"))
    assert parts and not (out / "index.html").exists(), "the run finished before it could be killed"
    total = len(list(photos.rglob("*.jpg")))

    summary = command.cluster(str(photos), out, settings_for(artifacts), "local", command.RayOptions())
    assert 0 < summary.already_done < total == summary.photos
    key = lambda row: (row["photo"], row["face"])  # noqa: E731
    assert groups_of(read_rows(out), key) == groups_of(read_rows(clustered[0]), key)


def test_a_group_folder_renamed_to_a_person_trains_and_enrols_as_it_is(
    clustered, archive, tmp_path: Path
) -> None:
    """Each group's folder, moved into a folder named after its person, trains and enrols as it is.

    A person split over two groups gets both folders, inside theirs (sub-folders are theirs too).
    """
    out, _ = clustered
    people = tmp_path / "people"
    for row in read_rows(out):
        if row["group"] is not None and (row["photo"], row["face"]) in archive[1]:
            target = people / person_of(row, archive) / row["group"]
            if not target.exists():
                shutil.copytree(out / row["group"], target)
    assert set(STRANGERS) <= {p.name for p in people.iterdir()}
    files = sorted(people.rglob("*.jpg"))
    dataset = scan(people)
    assert len(dataset.photos) == len(files) and not dataset.skipped

    artifacts = tmp_path / "artifacts"
    argv = ["train", "--data", str(people), "--artifacts", str(artifacts), "--backend", "svm", "--quick"]
    assert train([*argv, "--cache-dir", str(tmp_path / "cache"), "--test-size", "0", "--version", "v1"]) == 0
    manifest = load_recognizer(settings_for(artifacts)).manifest
    assert manifest.class_ids == sorted(p.name for p in people.iterdir())
    assert manifest.dataset["train_faces"] == len(files), "training did not find a face in every image"

    env = {
        **os.environ,
        "API_KEY": "k",
        "ENROL_STORE_DIR": str(tmp_path / "store"),
        "ENROL_ARTIFACTS_DIR": str(tmp_path / "enrolled"),
    }
    done = run_module("enrolment", "import", str(people), timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["files"] == len(files) and summary["error"] is None
    assert set(summary["outcomes"]) <= {"face_used", "several_faces"}, summary


@pytest.fixture
def page(browser, clustered) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto((clustered[0] / "index.html").as_uri())
    yield page
    context.close()
    assert not errors


def test_the_page_shows_every_group_with_its_faces_linked_to_their_photos(page, clustered, archive) -> None:
    out, _ = clustered
    photos, _ = archive
    rows = read_rows(out)
    sections = page.locator("section")
    folders = list(dict.fromkeys(str(Path(r["image"]).parent) for r in rows))
    assert [sections.nth(i).get_attribute("id") for i in range(sections.count())] == folders
    for i in range(sections.count()):
        section = sections.nth(i)
        section.scroll_into_view_if_needed()
        images = section.locator("img")
        wanted = [r for r in rows if str(Path(r["image"]).parent) == folders[i]]
        assert images.count() == len(wanted)
        page.wait_for_function(
            "section => [...section.querySelectorAll('img')].every(i => i.complete && i.naturalWidth > 0)",
            arg=section.element_handle(),
        )
        for j, row in enumerate(wanted):
            link = section.locator("a").nth(j)
            target = (out / link.get_attribute("href")).resolve()
            assert target == (photos / row["photo"]).resolve()
    groups = len({r["group"] for r in rows if r["group"]})
    assert f"in {groups} groups" in page.locator("p").first.inner_text()


def test_docs_screenshot(page) -> None:
    """The picture in the README and docs/clustering.md: the page on the test archive."""
    page.set_viewport_size({"width": 1000, "height": 700})
    page.wait_for_function("[...document.images].slice(0, 12).every(i => i.complete && i.naturalWidth > 0)")
    target = docs_picture("cluster.png")
    page.screenshot(path=str(target))
    assert target.stat().st_size > 10_000


def test_bad_input_is_one_line_and_status_2(archive, artifacts: Path, tmp_path: Path) -> None:
    photos, _ = archive
    empty = tmp_path / "empty"
    empty.mkdir()
    unreadable = tmp_path / "unreadable"
    unreadable.mkdir()
    (unreadable / "truncated.jpg").write_bytes((photos / "alone-00.jpg").read_bytes()[:500])
    (unreadable / "empty.png").write_bytes(b"")
    (unreadable / "notes.jpg").write_text("not a photo")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "holiday.jpg").write_bytes(b"mine")
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    cases = [
        ((str(empty), "--out", str(tmp_path / "o1")), "no photos under"),
        ((str(tmp_path / "missing"), "--out", str(tmp_path / "o2")), "is not a folder"),
        ((str(unreadable), "--out", str(tmp_path / "o3")), "none of the 3 files under"),
        ((str(photos), "--out", str(taken)), "already exists and holds no unfinished cluster run"),
        ((str(photos), "--out", str(a_file)), "is a file"),
        ((str(photos), "--out", str(tmp_path / "o4"), "--engine", "spark"), "invalid choice"),
    ]
    for args, message in cases:
        done = run_module("app", "cluster", *args, timeout=300, env=env_for(artifacts))
        assert done.returncode == 2, (args, done.stderr)
        assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
        assert message in done.stderr, done.stderr
    assert (taken / "holiday.jpg").read_bytes() == b"mine"  # a folder that is not ours is left alone


def test_a_model_without_embeddings_cannot_group(archive, tmp_path: Path, clustered) -> None:
    """Refused before any photo is read, naming what the model lacks."""
    photos, _ = archive
    artifacts = tmp_path / "artifacts"
    data = tmp_path / "data"
    known = sorted(photos.glob("known-*.jpg"))
    for person, theirs in zip(KNOWN[:2], (known[:2], known[2:4]), strict=True):
        (data / person).mkdir(parents=True)
        for path in theirs:
            shutil.copy(path, data / person / path.name)
    argv = ["train", "--data", str(data), "--artifacts", str(artifacts), "--backend", "svm", "--quick"]
    argv += ["--features", "pixels", "--detector", "haar", "--test-size", "0", "--version", "v1"]
    assert train([*argv, "--cache-dir", str(tmp_path / "cache")]) == 0
    assert command.main(str(photos), tmp_path / "out", settings_for(artifacts)) == 2
    assert not (tmp_path / "out").exists()


def test_embeddings_of_the_page_rows_are_the_services(clustered, archive, artifacts: Path) -> None:
    """Boxes and labels in groups.jsonl are what the service answers for the same photo."""
    out, _ = clustered
    photos, _ = archive
    recognizer = load_recognizer(settings_for(artifacts))
    rows = read_rows(out)
    for name in sorted({r["photo"] for r in rows})[:6]:
        served = recognizer.recognize_bytes((photos / name).read_bytes()).faces
        mine = sorted((r for r in rows if r["photo"] == name), key=lambda r: r["face"])
        assert [r["box"] for r in mine] == [f.box.as_dict() for f in served]
        assert [r["label"] for r in mine] == [f.label for f in served]
        assert np.allclose([r["confidence"] for r in mine], [f.confidence for f in served], atol=1e-5)


def test_each_unnamed_face_is_embedded_again_by_the_companion(
    archive, artifacts: Path, tmp_path: Path
) -> None:
    """FaceJob keeps dlib's embedding of each face the model cannot name (the rows grouped), none for the
    faces it names; the companion is part of the job, so a resumed run with another one is refused."""
    photos, people = archive
    settings = settings_for(artifacts)
    recognizer = load_recognizer(settings)
    joint = joint_for(recognizer.manifest)
    assert joint is not None and joint.companion.name == "dlib"
    job = FaceJob(str(tmp_path), joint)
    with pytest.raises(RuntimeError, match="load"):
        job.process(recognizer, Path("x.jpg"), lambda: b"", settings.max_pixels)
    job.load()
    dlib = create_extractor("dlib", {"margin": 0.2})
    mixed = sorted({name for name, _ in people if name.startswith("trip/")})[:4]
    kinds = set()
    for name in mixed:
        data = (photos / name).read_bytes()
        found = job.process(recognizer, Path(name), lambda data=data: data, settings.max_pixels)
        assert found.error is None and found.companion is not None
        rgb = recognizer.decode(data).rgb
        detections = recognizer.recognize_rgb(rgb).detections
        for face, row, detection in zip(found.faces, found.companion, detections, strict=True):
            kinds.add(face.label == UNKNOWN)
            if face.label == UNKNOWN:
                expected = dlib.extract([dlib.crop(rgb, detection)])[0]
                assert float(row @ expected) / (np.linalg.norm(row) * np.linalg.norm(expected)) > 0.9999
            else:
                assert np.isnan(row).all()
    assert kinds == {True, False}  # faces named and not
    assert job_description(settings, joint) != job_description(settings, None)


def test_the_ray_engine_groups_as_the_local_one(clustered, archive, artifacts: Path, tmp_path: Path) -> None:
    """On a real local Ray cluster (2 CPUs, as CI has): the same faces, the same groups."""
    ray = __import__("ray") if os.environ.get("CI") == "true" else pytest.importorskip("ray")
    photos, _ = archive
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        options = command.RayOptions(actors=2, batch_size=4)
        summary = command.cluster(str(photos), tmp_path / "people", settings_for(artifacts), "ray", options)
    finally:
        ray.shutdown()
    assert summary.photos == len(list(photos.rglob("*.jpg")))
    local, on_ray = read_rows(clustered[0]), read_rows(tmp_path / "people")
    strip = lambda row: {k: v for k, v in row.items() if k != "distance"}  # noqa: E731
    assert [strip(r) for r in on_ray] == [strip(r) for r in local]
    assert np.allclose([r["distance"] or 0 for r in on_ray], [r["distance"] or 0 for r in local], atol=1e-5)
