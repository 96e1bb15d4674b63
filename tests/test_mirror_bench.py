"""bench/mirroring.py, the mirrored-face augmentation docs/benchmarks.md measures (issue 24), on real photos.

The bench's figures are only as good as its parts: a mirrored aligned crop embedded as the same
person, cross-validation folds that never score a face whose mirror was trained on, a calibration
that never matches a face with its own mirror, and a test-time rule that takes the nearer view.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from app.config import PROJECT_ROOT
from app.labelled.folders import Photo, scan
from app.model.unknown import UnknownRule, l2_normalise
from training.fitting import FitOptions
from training.run_config import Stages, TrainConfig
from training.sklearn_search import fit
from training.train import usable_photos
from training.unknown_threshold import calibrate

sys.path.append(str(PROJECT_ROOT / "bench"))
from mirroring import (  # bench/ holds scripts, not a package
    EitherView,
    PairedFolds,
    mirror_lookup,
    mirror_rows,
    mirrored,
    paired_calibration,
    refit_with_mirrors,
)

PHOTOS_PER_PERSON = 6


@pytest.fixture(scope="module")
def faces(data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """Six photos of each of the five people, their faces as training finds them, and their mirrors."""
    stages = Stages.create(TrainConfig(data=data_dir, artifacts=tmp_path_factory.mktemp("unused")))
    dataset, found = usable_photos(scan(data_dir, PHOTOS_PER_PERSON), stages)
    photos: list[Photo] = dataset.photos
    rows = stages.features_of(photos, found)
    mirrors = mirrored(stages, photos, found)
    labels = np.array([p.label for p in photos])
    return photos, found, mirrors, rows, mirror_rows(photos, rows, found, mirrors), labels


def test_a_mirrored_crop_is_embedded_as_the_same_face(faces) -> None:
    photos, _, _, rows, flipped, labels = faces
    assert len(set(labels)) == 5 and len(photos) >= 5 * (PHOTOS_PER_PERSON - 1)
    similarity = l2_normalise(flipped) @ l2_normalise(rows).T
    own = np.diag(similarity)
    assert np.all(own < 1 - 1e-4), "a mirror is another crop, not the same pixels"
    assert np.all(1 - own < 0.1), f"mirrors far from their faces: {np.sort(1 - own)[-3:]}"
    # Nearer its own face than any other photo: the mirror is that face, seen the other way round.
    assert np.all(similarity.argmax(axis=1) == np.arange(len(rows)))


def test_paired_folds_keep_each_mirror_on_its_photos_side() -> None:
    labels = np.repeat(np.array(["a", "b", "c"]), 4)
    y = np.tile(labels, 2)  # rows [originals; mirrors]
    n = len(labels)
    folds = PairedFolds(4, shuffle=True, random_state=0)
    scored = []
    for train, test in folds.split(np.zeros(len(y)), y):
        assert not set(train) & set(test)
        assert set(train) | set(test) == set(range(2 * n))
        assert {i % n for i in train}.isdisjoint({i % n for i in test})
        scored += [i for i in test if i < n]
    assert sorted(scored) == list(range(n)), "every photo scored exactly once"
    assert folds.get_n_splits() == 4


def test_the_paired_calibration_never_matches_a_face_with_its_own_mirror(faces) -> None:
    _, _, _, rows, flipped, labels = faces
    plain = calibrate(rows, labels).threshold
    # Mirrors identical to their faces: excluding each face's own mirror gives the plain calibration.
    for queries in (False, True):
        assert paired_calibration(rows, rows.copy(), labels, queries) == pytest.approx(plain)
    # Real mirrors are second views: every face is at least as near some other face as before.
    for queries in (False, True):
        assert paired_calibration(rows, flipped, labels, queries) <= plain + 1e-9


def test_the_classifier_refitted_with_mirrors_keeps_its_choice_and_calibration(faces) -> None:
    _, _, _, rows, flipped, labels = faces
    model = fit(rows, labels, rows.shape[1:], FitOptions("svm", 42, quick=True))
    chosen = model.summary["winner"]
    refit_with_mirrors(model, np.concatenate([rows, flipped]), np.tile(labels, 2))
    assert model.summary["winner"] == chosen
    assert len(model.features) == 2 * len(rows)
    probabilities = model.predict_proba(flipped)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert np.mean(np.array(sorted(set(labels)))[probabilities.argmax(axis=1)] == labels) >= 0.9


def test_the_test_time_rule_takes_the_nearer_view(faces) -> None:
    photos, found, mirrors, rows, _, labels = faces
    refs = [i for i in range(len(photos)) if i % 2 == 0]
    rule = EitherView(rows[refs], 0.5, labels[refs], mirror_lookup(found, mirrors))
    plain = UnknownRule(rows[refs], 0.5)
    queries = np.concatenate([found[p].features for p in photos])
    their_mirrors = np.concatenate([mirrors[p].features for p in photos])
    expected = np.minimum(plain.distances(queries), plain.distances(their_mirrors))
    assert np.allclose(rule.distances(queries), expected)
    assert np.any(rule.distances(queries) < plain.distances(queries)), "some mirror is the nearer view"
    assert np.array_equal(rule.is_unknown(queries), expected > 0.5)
