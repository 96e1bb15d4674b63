"""Artifacts: the committed models verify, and a tampered or partial one never loads."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from app.artifact.manifest import ArtifactError, check_version_name, load_manifest, resolve_version_dir
from app.model.recognizer import Recognizer
from app.pipeline.crop import align_face
from app.pipeline.detect import create_detector
from app.pipeline.features import create_extractor
from tests.conftest import ARTIFACTS, BACKENDS


@pytest.mark.parametrize("backend", BACKENDS)
def test_committed_model_verifies(backend: str) -> None:
    version_dir = resolve_version_dir(ARTIFACTS, backend)
    manifest = load_manifest(version_dir)
    assert manifest.backend == backend and manifest.version == version_dir.name
    for name in ("report.md", "confusion_matrix.png"):
        assert name in manifest.files
    test = manifest.metrics["test"]
    assert test["test_photos"] == len(manifest.dataset["test_files"])


@pytest.fixture
def svm_copy(tmp_path):
    source = resolve_version_dir(ARTIFACTS, "svm")
    target = tmp_path / "svm" / source.name
    shutil.copytree(source, target)
    (tmp_path / "svm" / "LATEST").write_text(source.name)
    return target


def test_tampered_model_is_refused(svm_copy) -> None:
    model = next(svm_copy.glob("model.*"))
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="does not match"):
        Recognizer.from_artifact(svm_copy)


def test_missing_file_is_refused(svm_copy) -> None:
    next(svm_copy.glob("model.*")).unlink()
    with pytest.raises(ArtifactError, match="missing"):
        load_manifest(svm_copy)


def test_corrupt_manifest_is_refused(svm_copy) -> None:
    (svm_copy / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not a valid manifest"):
        load_manifest(svm_copy)


def test_version_names_cannot_escape(tmp_path) -> None:
    for bad in ("../etc", "a/b", "", ".hidden"):
        with pytest.raises(ArtifactError):
            check_version_name(bad)
    with pytest.raises(ArtifactError, match="no model"):
        resolve_version_dir(tmp_path, "svm")


def test_stages_already_loaded_are_reused_only_when_they_are_the_manifests(svm_copy) -> None:
    """Training evaluates with the detector and embedder it made the artifact with; others are rebuilt."""
    manifest = load_manifest(svm_copy)
    detector = create_detector(manifest.detector.name, manifest.detector.params)
    extractor = create_extractor(manifest.features.name, manifest.features.params)
    same = Recognizer.from_artifact(svm_copy, stages=(detector, extractor))
    assert same.detector is detector and same.extractor is extractor
    other_detector = create_detector(manifest.detector.name, {**manifest.detector.params, "min_face": 40})
    other_extractor = create_extractor(manifest.features.name, {"margin": 0.3})
    rebuilt = Recognizer.from_artifact(svm_copy, stages=(other_detector, other_extractor))
    assert rebuilt.detector is not other_detector and rebuilt.detector.params == manifest.detector.params
    assert rebuilt.extractor is not other_extractor and rebuilt.extractor.params == manifest.features.params


def test_a_model_from_before_templates_keeps_its_box_crop(svm_copy, one_face) -> None:
    """A manifest that does not name FaceNet's crop was trained on the box crop, and is served with it."""
    path = svm_copy / "manifest.json"
    raw = json.loads(path.read_text())
    raw["features"]["params"].pop("crop", None)  # as every manifest was written before issue 24
    path.write_text(json.dumps(raw))
    recognizer = Recognizer.from_artifact(svm_copy)
    assert recognizer.extractor.params == {"margin": 0.2, "crop": "box"}
    assert recognizer.manifest.features.params == recognizer.extractor.params
    rgb = one_face.rgb
    (face,) = recognizer.detector.detect(rgb)
    np.testing.assert_array_equal(recognizer.extractor.crop(rgb, face), align_face(rgb, face, 160, 0.2))
