"""Training end to end on a small subset: a real artifact that the service then loads and uses."""

from __future__ import annotations

import shutil

import pytest

from app.artifact.manifest import load_manifest
from app.labelled.folders import scan
from app.model.recognizer import Recognizer
from app.pipeline.decode import decode_image
from training.cli import main
from training.train import TrainConfig, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def messy_data(data_dir, tmp_path_factory):
    """A small copy of the photos with the mess real folders have: odd names, formats, stray files."""
    root = tmp_path_factory.mktemp("photos")
    for person in sorted(p for p in data_dir.iterdir() if p.is_dir())[:3]:
        target = root / person.name
        target.mkdir()
        for i, photo in enumerate(sorted(person.glob("*.jpg"))[:10]):
            suffix = [".jpg", ".JPEG", ".jfif", ".png", ".webp"][i % 5]
            name = f"photo {i} (copy){suffix}"
            if suffix in (".png", ".webp"):
                from PIL import Image

                Image.open(photo).convert("RGB").save(target / name)
            else:
                shutil.copy(photo, target / name)
        (target / ".DS_Store").write_bytes(b"\0\0")
        (target / "notes.txt").write_text("not a photo")
        (target / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage from " + person.name.encode())
    (root / "README.md").write_text("stray file at the root")
    return root


def test_scan_reports_what_it_skips(messy_data) -> None:
    dataset = scan(messy_data)
    assert len(dataset.class_ids) == 3
    assert len(dataset.photos) == 33  # 10 photos + broken.jpg per person
    reasons = {s.path.name: s.reason for s in dataset.skipped}
    assert reasons["README.md"] == "not inside a person folder"
    assert reasons["notes.txt"] == "not a photo type training reads (.txt)"
    assert reasons[".DS_Store"] == "hidden or system file"


def test_train_classic_pipeline_then_serve_it(messy_data, tmp_path, capsys) -> None:
    artifacts = tmp_path / "artifacts"
    code = main(
        [
            "train",
            "--data",
            str(messy_data),
            "--artifacts",
            str(artifacts),
            "--backend",
            "svm",
            "--quick",
            "--version",
            "t1",
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    assert code == 0
    version_dir = artifacts / "svm" / "t1"
    assert (artifacts / "svm" / "LATEST").read_text().strip() == "t1"
    manifest = load_manifest(version_dir)
    assert {"model.skops", "report.md", "confusion_matrix.png"} <= set(manifest.files)
    # The three broken files are listed as unreadable and kept out of both training and testing.
    assert manifest.dataset["skipped_counts"]["unreadable"] == 3
    assert manifest.dataset["photos"] == 30
    assert set(manifest.metrics["test"]["per_class"]) == set(manifest.class_ids)
    assert "logistic_regression" in manifest.classifier["candidates"]
    assert "Accuracy" in (version_dir / "report.md").read_text()

    recognizer = Recognizer.from_artifact(version_dir)
    photo = next(p for p in sorted(messy_data.rglob("*.jpg")) if p.name != "broken.jpg")
    result = recognizer.recognize_rgb(decode_image(photo.read_bytes()))
    for face in result.faces:
        assert face.label in [*manifest.class_ids, "unknown"]


def test_a_person_left_out_is_unknown(data_dir, tmp_path) -> None:
    """Leave one person out: trained on the others, the model answers "unknown" for that person."""
    people = sorted(p.name for p in data_dir.iterdir() if p.is_dir())
    stranger = people[-1]
    version_dir = train(
        TrainConfig(
            data=data_dir, artifacts=tmp_path, version="lopo", quick=True, exclude_classes=(stranger,)
        )
    )
    manifest = load_manifest(version_dir)
    assert stranger not in manifest.class_ids
    assert {"references.npy", "open_set.png"} <= set(manifest.files)
    recognizer = Recognizer.from_artifact(version_dir)
    answers = [
        recognizer.recognize_rgb(decode_image(p.read_bytes())).faces
        for p in sorted((data_dir / stranger).glob("*.jpg"))[:10]
    ]
    labels = [max(faces, key=lambda f: f.box.area).label for faces in answers if faces]
    assert labels.count("unknown") >= 8, labels
    assert manifest.metrics["test"]["accuracy"] >= 0.9
