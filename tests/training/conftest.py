"""Fixtures for the training tests: small folders built from the shared photos, and one embedding cache.

Every folder is made in a temporary directory (photos copied or linked there,
never into the repository); the session's embedding cache means each shared photo
is detected and embedded once for all these tests.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from app.labelled.folders import Photo
from app.model.same_person import default_thresholds
from app.pipeline.detect import create_detector
from app.pipeline.features import create_extractor
from training.cache import EmbeddingCache
from training.cli import main
from training.faces import embed_photos, main_face_features

PEOPLE = ("billy_boyd", "dominic_monaghan", "elijah_wood", "martin_freeman", "sean_astin")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embedding-cache")


@pytest.fixture(scope="session")
def shared_photos(data_dir: Path) -> dict[str, list[Path]]:
    """The first ten shared photos of each person, by name."""
    return {person: sorted((data_dir / person).glob("*.jpg"))[:10] for person in PEOPLE}


def copy_photos(target: Path, photos: dict[str, list[Path]]) -> Path:
    """``target/<person>/<photo>`` for the given photos (copies, so tests may damage them)."""
    for person, paths in photos.items():
        (target / person).mkdir(parents=True, exist_ok=True)
        for path in paths:
            shutil.copy(path, target / person / path.name)
    return target


@pytest.fixture
def run_cli(tmp_path: Path, cache_dir: Path, capsys: pytest.CaptureFixture) -> Callable[..., tuple[int, str]]:
    """Run ``python -m training train`` in-process on a folder: (exit status, stderr)."""

    def run(data: Path, *extra: str, backend: str = "svm") -> tuple[int, str]:
        argv = [
            "train",
            "--data",
            str(data),
            "--artifacts",
            str(tmp_path / "artifacts"),
            "--backend",
            backend,
        ]
        code = main([*argv, "--cache-dir", str(cache_dir), "--quick", "--version", "v1", *extra])
        return code, capsys.readouterr().err

    return run


#: The default embedder's name and parameters (``stages``), for the unknown threshold's defaults.
EMBEDDING = ("facenet", {"margin": 0.2, "crop": "arcface"})


def thresholds_table() -> dict[int, float]:
    """The default embedder's measured few-photo unknown thresholds, by photos per person."""
    defaults = default_thresholds(*EMBEDDING)
    assert defaults is not None, f"no default thresholds are measured for {EMBEDDING}"
    return defaults["by_photos_per_person"]


@pytest.fixture(scope="session")
def stages():
    """The default detector and embedder, as training builds them."""
    return create_detector("blazeface"), create_extractor("facenet")


@pytest.fixture(scope="session")
def cache(stages, cache_dir: Path) -> EmbeddingCache:
    return EmbeddingCache.for_stages(cache_dir, *stages)


@pytest.fixture(scope="session")
def embedded(shared_photos, stages, cache) -> tuple[np.ndarray, np.ndarray]:
    """One embedding row per photo of the first ten of each person, and the labels."""
    detector, extractor = stages
    photos = [
        Photo(path, person, hashlib.sha256(path.read_bytes()).hexdigest())
        for person, paths in shared_photos.items()
        for path in paths
    ]
    faces, dropped = embed_photos(photos, detector, extractor, cache)
    assert not dropped
    return main_face_features([(p.label, faces[p]) for p in photos], True), np.array(
        [p.label for p in photos]
    )


def subset(embedded, per_person: int, people=PEOPLE) -> tuple[np.ndarray, np.ndarray]:
    features, labels = embedded
    keep = np.concatenate([np.flatnonzero(labels == p)[:per_person] for p in people])
    return features[keep], labels[keep]


class Listing:
    """The two things the svm backend reads from a manifest: the classes and the files it lists."""

    def __init__(self, version_dir: Path, class_ids) -> None:
        self.class_ids = list(class_ids)
        self.files = {path.name: "" for path in version_dir.iterdir()}
