"""cnn backend: trains on a small subset, loads back as the service does, answers via one compiled call."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.artifact.manifest import ArtifactError, load_manifest
from app.config import Settings
from app.model.host import ModelHost
from app.model.recognizer import Recognizer
from app.pipeline.decode import decode_image
from training.cli import main as train_cli

pytestmark = [pytest.mark.cnn, pytest.mark.slow]

PEOPLE = ("billy_boyd", "elijah_wood", "sean_astin")


@pytest.fixture(scope="module")
def artifacts_root(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """A --quick conv net on pixels (the seed's path), 3 people x 8 photos; photos linked, never copied."""
    data = tmp_path_factory.mktemp("data")
    for person in PEOPLE:
        (data / person).symlink_to(data_dir / person, target_is_directory=True)
    root = tmp_path_factory.mktemp("artifacts")
    argv = [
        "train",
        "--data",
        str(data),
        "--backend",
        "cnn",
        "--features",
        "pixels",
        "--artifacts",
        str(root),
    ]
    assert train_cli([*argv, "--quick", "--max-per-class", "8", "--version", "v1"]) == 0
    return root


@pytest.fixture(scope="module")
def version_dir(artifacts_root: Path) -> Path:
    return artifacts_root / "cnn" / "v1"


@pytest.fixture(scope="module")
def recognizer(version_dir: Path) -> Recognizer:
    return Recognizer.from_artifact(version_dir)


@pytest.fixture(scope="module")
def test_photos(version_dir: Path, data_dir: Path) -> list[np.ndarray]:
    """The subset's held-out photos, decoded."""
    files = load_manifest(version_dir).dataset["test_files"]
    return [decode_image((data_dir / name).read_bytes()) for name in files]


def test_artifact_holds_a_keras_model_and_its_curves(version_dir: Path) -> None:
    manifest = load_manifest(version_dir)
    assert manifest.backend == "cnn" and manifest.features.name == "pixels"
    assert manifest.class_ids == list(PEOPLE) == manifest.classifier["classes"]
    for name in ("model.keras", "training_curves.png", "report.md", "confusion_matrix.png"):
        assert name in manifest.files
    assert not [n for n in manifest.files if n.endswith((".pkl", ".pickle", ".joblib"))]
    candidates = manifest.classifier["candidates"]
    assert len(candidates) == 2 and manifest.classifier["winner"] in candidates
    assert all(0 <= c["validation_accuracy"] <= 1 for c in candidates.values())
    assert "training_curves.png" in (version_dir / "report.md").read_text()


def test_classifies_a_real_photo(recognizer: Recognizer, test_photos: list[np.ndarray]) -> None:
    faces = [face for rgb in test_photos for face in recognizer.recognize_rgb(rgb).faces]
    assert faces, "no face found in any held-out photo"
    for face in faces:
        assert face.label in PEOPLE
        assert list(face.probabilities) == list(PEOPLE)
        assert sum(face.probabilities.values()) == pytest.approx(1.0, abs=1e-4)
        assert face.confidence == max(face.probabilities.values())


def test_compiled_call_matches_model_predict(recognizer: Recognizer, test_photos: list[np.ndarray]) -> None:
    crops = [
        recognizer.extractor.crop(rgb, face)
        for rgb in test_photos
        for face in recognizer.detector.detect(rgb)
    ]
    rows = recognizer.extractor.extract(crops)
    assert len(rows) >= 2
    classifier = recognizer.classifier
    batched = classifier.predict_proba(rows)
    np.testing.assert_allclose(batched, classifier.model.predict(rows, verbose=0), atol=1e-5)
    one_by_one = np.vstack([classifier.predict_proba(row[None]) for row in rows])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    assert classifier.predict_proba(rows[:0]).shape == (0, len(PEOPLE))
    # One input signature: batches of every size above ran on a single trace.
    assert classifier.compiled.experimental_get_tracing_count() == 1


def test_warm_up_traces_the_compiled_call(artifacts_root: Path) -> None:
    settings = Settings(_env_file=None, artifacts_dir=artifacts_root, classifier_backend="cnn")
    recognizer = ModelHost(settings).load()
    assert recognizer.classifier.compiled.experimental_get_tracing_count() == 1


def test_model_with_the_wrong_number_of_classes_is_refused(version_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "v1"
    copy.mkdir()
    for file in version_dir.iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["classes"] = manifest["classes"][:2]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="3 outputs for 2 classes"):
        Recognizer.from_artifact(copy)
