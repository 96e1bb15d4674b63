"""Mirrored faces as training-time augmentation, for the benches that measure it (issue 24).

Every training face also contributes the embedding of its left-right mirrored aligned crop:
to the classifier's rows, to the unknown rule's references, or to both. Measured here rather
than built into training: `bench/learning_curve.py --mirror ...` and `bench/mirror_refs.py`
(docs/benchmarks.md, "Mirrored faces at training time (issue 24)").

- ``mirrored``: each photo's faces embedded again from their mirrored crops (the embedding
  cache does not hold them).
- ``mirror_rows``: the mirrored embedding of the face training chose for each photo.
- ``PairedFolds``: the classifier's cross-validation when its rows are [originals; mirrors]:
  folds drawn over photos, a photo's mirror trains with it and is never scored, so a fold never
  scores a face whose mirror it was trained on.
- ``unknown_rule``: the served rule chosen from plain references as training chooses it, or,
  with mirrors, the same derivation with each reference's mirror as a second reference
  (calibrated leaving each person out, no face matched with its own mirror; or the per-k
  defaults measured the same way on the training split).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
from sklearn.model_selection import StratifiedKFold

import training.sklearn_search
from app.labelled.folders import Photo
from app.model.unknown import UnknownRule, l2_normalise
from app.pipeline.decode import DEFAULT_MAX_PIXELS, decode_photo
from training.cache import PhotoFaces
from training.train import Stages
from training.unknown_threshold import (
    CALIBRATION_MIN_PEOPLE,
    CALIBRATION_MIN_PHOTOS,
    KNOWN_PERCENTILE,
    STRANGER_PERCENTILE,
    choose_threshold,
)

#: Where the mirrored embeddings go.
MIRRORS = ("none", "references", "classifier", "both")


def mirrored(stages: Stages, photos: list[Photo], faces: dict[Photo, PhotoFaces]) -> dict[Photo, PhotoFaces]:
    """Each photo's faces with features replaced by the embedding of the mirrored aligned crop."""
    out = {}
    extractor = stages.extractor
    for photo in photos:
        entry = faces[photo]
        rgb = decode_photo(photo.path.read_bytes(), DEFAULT_MAX_PIXELS, min_side=stages.detector.max_side).rgb
        crops = [np.ascontiguousarray(extractor.crop(rgb, face)[:, ::-1]) for face in entry.faces]
        out[photo] = PhotoFaces(entry.faces, extractor.extract(crops))
    return out


def mirror_rows(
    photos: list[Photo], rows: np.ndarray, faces: dict[Photo, PhotoFaces], mirrors: dict[Photo, PhotoFaces]
) -> np.ndarray:
    """The mirrored embedding of the face each of ``rows`` (training's choice per photo) came from."""
    return np.stack(
        [
            mirrors[p].features[int(np.argmin(np.abs(faces[p].features - row).sum(axis=1)))]
            for p, row in zip(photos, rows, strict=True)
        ]
    )


class PairedFolds:
    """Stratified folds over photos for rows [originals; mirrors] (the second half mirrors the first)."""

    def __init__(self, n_splits: int, shuffle: bool = False, random_state: int | None = None) -> None:
        self.inner = StratifiedKFold(n_splits=n_splits, shuffle=shuffle, random_state=random_state)

    def split(self, x, y, groups=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        n = len(y) // 2
        for train, test in self.inner.split(np.zeros(n), np.asarray(y)[:n]):
            yield np.concatenate([train, train + n]), test

    def get_n_splits(self, x=None, y=None, groups=None) -> int:
        return self.inner.get_n_splits()


@contextlib.contextmanager
def paired_folds(active: bool) -> Iterator[None]:
    """While active, the svm model search cross-validates with ``PairedFolds``."""
    if not active:
        yield
        return
    plain = training.sklearn_search.StratifiedKFold
    training.sklearn_search.StratifiedKFold = PairedFolds  # type: ignore[misc,assignment]
    try:
        yield
    finally:
        training.sklearn_search.StratifiedKFold = plain  # type: ignore[misc]


def nearest_of_both(queries: np.ndarray, refs: np.ndarray, mirrors: np.ndarray | None) -> np.ndarray:
    """Cosine distance from each query to its nearest reference, a reference's mirror counting as it."""
    unit = l2_normalise(queries)
    similarity = unit @ l2_normalise(refs).T
    if mirrors is not None:
        similarity = np.maximum(similarity, unit @ l2_normalise(mirrors).T)
    return 1.0 - similarity.max(axis=1)


def paired_calibration(rows: np.ndarray, mirrors: np.ndarray, labels: np.ndarray) -> float:
    """``training.unknown_threshold.calibrate``'s threshold with each face's mirror as a second
    reference; a face is never matched with itself or its own mirror."""
    unit, unit_mirror = l2_normalise(rows), l2_normalise(mirrors)
    known, strangers = [], []
    for person in np.unique(labels):
        others = labels != person
        similarity = np.maximum(unit[others] @ unit[others].T, unit[others] @ unit_mirror[others].T)
        np.fill_diagonal(similarity, -np.inf)
        known.append(1.0 - similarity.max(axis=1))
        strangers.append(nearest_of_both(unit[~others], unit[others], unit_mirror[others]))
    return float(
        (
            np.percentile(np.concatenate(known), KNOWN_PERCENTILE)
            + np.percentile(np.concatenate(strangers), STRANGER_PERCENTILE)
        )
        / 2
    )


def unknown_rule(
    stages: Stages,
    rows: np.ndarray,
    labels: np.ndarray,
    mirrors: np.ndarray | None,
    defaults: dict[int, float] | None,
) -> UnknownRule | None:
    """The unknown rule training would set on ``rows``; with ``mirrors``, each reference's mirror is a
    reference too, the threshold derived the same way with them (``defaults``: per-k defaults
    measured with mirrors, on the training split)."""
    if mirrors is None:
        choice = choose_threshold(rows, labels, stages.extractor.name, stages.extractor.params)
        if choice.threshold is None:
            return None
        per_face = (
            None
            if choice.class_thresholds is None
            else np.array([choice.class_thresholds[str(label)] for label in labels], np.float32)
        )
        return UnknownRule(rows, choice.threshold, per_face, labels)
    assert defaults is not None
    people, counts = np.unique(labels, return_counts=True)
    if len(people) >= CALIBRATION_MIN_PEOPLE and counts.min() >= CALIBRATION_MIN_PHOTOS:
        threshold = paired_calibration(rows, mirrors, labels)
    else:
        if len(set(counts.tolist())) != 1:
            raise ValueError("the mirrored rule is measured for equal photos per person only")
        threshold = defaults[max(n for n in defaults if n <= int(counts[0]))]
    return UnknownRule(np.concatenate([rows, mirrors]), threshold, None, np.concatenate([labels, labels]))
