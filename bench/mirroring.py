"""Mirrored faces as training-time augmentation, for the benches that measure it (issue 24).

Every training face also contributes the embedding of its left-right mirrored aligned crop:
to the classifier's rows, to the unknown rule's references, or to both. Measured here rather
than built into training: `bench/learning_curve.py --mirror ...` and `bench/mirror_refs.py`
(docs/benchmarks.md, "Mirrored faces at training time (issue 24)").

- ``mirrored``: each photo's faces embedded again from their mirrored crops (the embedding
  cache does not hold them).
- ``mirror_rows``: the mirrored embedding of the face training chose for each photo.
- ``refit_with_mirrors``: the classifier training chose on the photos' own faces, fitted again on
  them and their mirrors; a calibrated one calibrated with ``PairedFolds``: folds drawn over
  photos, each photo's mirror on its side, so a fold never scores a face whose mirror it was
  trained on.
- ``unknown_rule``: the served rule chosen from plain references as training chooses it, or,
  with mirrors, the same derivation with each reference's mirror as a second reference, or
  with each answered face judged by the nearer of itself and its mirror (``EitherView``):
  calibrated leaving each person out, no face matched with itself or its own mirror, or the
  per-k defaults measured the same way on the training split.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import StratifiedKFold

from app.labelled.folders import Photo
from app.model.unknown import UnknownRule, l2_normalise
from app.pipeline.decode import DEFAULT_MAX_PIXELS, decode_photo
from training.cache import PhotoFaces
from training.sklearn_search import SvmModel
from training.train import Stages
from training.unknown_threshold import (
    CALIBRATION_MIN_PEOPLE,
    CALIBRATION_MIN_PHOTOS,
    KNOWN_PERCENTILE,
    STRANGER_PERCENTILE,
    choose_threshold,
)

#: Where the mirrored embeddings go: training faces' to the classifier, the unknown rule's
#: references or both; ``queries``: each answered face's own mirror, to the unknown rule only
#: (test-time mirroring: one more embedding per face in every request).
MIRRORS = ("none", "references", "classifier", "both", "queries")


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
            yield np.concatenate([train, train + n]), np.concatenate([test, test + n])

    def get_n_splits(self, x=None, y=None, groups=None) -> int:
        return self.inner.get_n_splits()


def refit_with_mirrors(model: SvmModel, rows: np.ndarray, labels: np.ndarray) -> None:
    """Refit the svm backend's chosen model on [rows; their mirrors] (``rows`` holds both halves).

    The model was chosen on the photos' own faces, as training chooses it; only its final fit
    sees the mirrors. A calibrated model's out-of-fold calibration keeps each mirror on its
    photo's side of every fold (``PairedFolds``)."""
    estimator = model.estimator
    if isinstance(estimator, CalibratedClassifierCV):
        cv = estimator.cv
        estimator.set_params(cv=PairedFolds(cv.n_splits, cv.shuffle, cv.random_state))
    estimator.fit(rows, labels)
    model.features = rows


def nearest_of_both(
    queries: np.ndarray,
    refs: np.ndarray,
    mirrors: np.ndarray | None,
    query_mirrors: np.ndarray | None = None,
) -> np.ndarray:
    """Cosine distance from each query to its nearest reference, a reference's mirror counting as it
    (``mirrors``), or the nearer of the query and its mirror counting (``query_mirrors``)."""
    unit = l2_normalise(refs)
    similarity = l2_normalise(queries) @ unit.T
    if mirrors is not None:
        similarity = np.maximum(similarity, l2_normalise(queries) @ l2_normalise(mirrors).T)
    if query_mirrors is not None:
        similarity = np.maximum(similarity, l2_normalise(query_mirrors) @ unit.T)
    return 1.0 - similarity.max(axis=1)


def paired_calibration(rows: np.ndarray, mirrors: np.ndarray, labels: np.ndarray, queries: bool) -> float:
    """``training.unknown_threshold.calibrate``'s threshold with each face's mirror as a second
    reference, or (``queries``) as a second view of each known or stranger face; a face is never
    matched with itself or its own mirror."""
    unit, unit_mirror = l2_normalise(rows), l2_normalise(mirrors)
    known, strangers = [], []
    for person in np.unique(labels):
        others = labels != person
        plain, flipped = unit[others], unit_mirror[others]
        similarity = np.maximum(plain @ plain.T, flipped @ plain.T if queries else plain @ flipped.T)
        np.fill_diagonal(similarity, -np.inf)
        known.append(1.0 - similarity.max(axis=1))
        strangers.append(
            nearest_of_both(unit[~others], unit[others], None, unit_mirror[~others])
            if queries
            else nearest_of_both(unit[~others], unit[others], unit_mirror[others])
        )
    return float(
        (
            np.percentile(np.concatenate(known), KNOWN_PERCENTILE)
            + np.percentile(np.concatenate(strangers), STRANGER_PERCENTILE)
        )
        / 2
    )


class EitherView(UnknownRule):
    """The served rule with each face judged by the nearer of itself and its mirror, which
    ``mirror_of`` gives by the face's embedding (every face of every photo the bench knows)."""

    def __init__(self, references: np.ndarray, threshold: float, labels, mirror_of: dict[bytes, np.ndarray]):
        super().__init__(references, threshold, None, labels)
        self.mirror_of = mirror_of

    def distances(self, features: np.ndarray) -> np.ndarray:
        mirrors = np.stack([self.mirror_of[row.tobytes()] for row in features])
        return np.minimum(super().distances(features), super().distances(mirrors))


def mirror_lookup(
    faces: dict[Photo, PhotoFaces], mirrors: dict[Photo, PhotoFaces]
) -> dict[bytes, np.ndarray]:
    """Every face's embedding (as bytes) to its mirror's."""
    return {
        row.tobytes(): flipped
        for photo, entry in faces.items()
        if photo in mirrors
        for row, flipped in zip(entry.features, mirrors[photo].features, strict=True)
    }


def unknown_rule(
    stages: Stages,
    rows: np.ndarray,
    labels: np.ndarray,
    mirrors: np.ndarray | None,
    defaults: dict[int, float] | None,
    mirror_of: dict[bytes, np.ndarray] | None = None,
) -> UnknownRule | None:
    """The unknown rule training would set on ``rows``; with ``mirrors`` (the rows' mirrors), each
    reference's mirror is a reference too, or with ``mirror_of`` too, each answered face is judged
    by its nearer view; the threshold derived the same way (``defaults``: per-k defaults measured
    with mirrors, on the training split)."""
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
        threshold = paired_calibration(rows, mirrors, labels, mirror_of is not None)
    else:
        if len(set(counts.tolist())) != 1:
            raise ValueError("the mirrored rule is measured for equal photos per person only")
        threshold = defaults[max(n for n in defaults if n <= int(counts[0]))]
    if mirror_of is not None:
        return EitherView(rows, threshold, labels, mirror_of)
    return UnknownRule(np.concatenate([rows, mirrors]), threshold, None, np.concatenate([labels, labels]))
