"""Open-set rule: say "unknown" for a face that is far from every face the model was trained on.

A closed-set classifier always picks one of its classes, so a stranger would be
labelled as somebody. In a face-embedding space photos of one person lie close
together; a face whose cosine distance to its nearest training face is above a
threshold is declared unknown. The nearest training face works better than a
class centroid here: a person's photos form several clusters (ages, beards,
lighting), and a centroid sits between them. The threshold is calibrated at
training time on the training split only (see training/unknown_threshold.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.artifact.file_names import REFERENCE_LABELS, REFERENCE_THRESHOLDS, REFERENCES


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def nearest_distance(features: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Cosine distance (0 same direction .. 2 opposite) from each row to its nearest reference."""
    return _nearest_to_unit(features, l2_normalise(references))


def _nearest_to_unit(features: np.ndarray, unit_references: np.ndarray) -> np.ndarray:
    return 1.0 - (l2_normalise(features) @ unit_references.T).max(axis=1)


class UnknownRule:
    """Flags faces farther than ``threshold`` from every reference (training) embedding.

    ``reference_thresholds`` (one per reference) replaces the single threshold when people's
    differ: a face is known when it is within *that reference's* threshold of some reference.
    ``labels`` (one class id per reference) say whose face each reference is; versions written
    before they were stored have none.
    """

    def __init__(
        self,
        references: np.ndarray,
        threshold: float,
        reference_thresholds: np.ndarray | None = None,
        labels: np.ndarray | None = None,
    ) -> None:
        self.references = l2_normalise(references.astype(np.float32))
        self.threshold = threshold
        self.labels = None if labels is None else np.asarray(labels, dtype=str)
        if self.labels is not None and self.labels.shape != (len(self.references),):
            raise ValueError(f"{len(self.references)} references but {self.labels.shape} labels")
        # What nearest_distance would normalise on every call (bit for bit the same), done once:
        # Once per model, not once per face: the references are many rows of 512.
        self._unit_references = l2_normalise(self.references)
        self.reference_thresholds = (
            None if reference_thresholds is None else np.asarray(reference_thresholds, np.float32)
        )
        if self.reference_thresholds is not None and self.reference_thresholds.shape != (
            len(self.references),
        ):
            raise ValueError(
                f"{len(self.references)} references but {self.reference_thresholds.shape} thresholds"
            )

    @classmethod
    def load(
        cls, version_dir: Path, threshold: float, per_reference: bool = False, labelled: bool = False
    ) -> UnknownRule:
        """``per_reference``: read each reference's threshold too (the manifest has class thresholds);
        ``labelled``: read each reference's class id (the version lists the file)."""
        references = np.load(version_dir / REFERENCES, allow_pickle=False)
        thresholds = (
            np.load(version_dir / REFERENCE_THRESHOLDS, allow_pickle=False) if per_reference else None
        )
        labels = np.load(version_dir / REFERENCE_LABELS, allow_pickle=False) if labelled else None
        return cls(references, threshold, thresholds, labels)

    def save(self, version_dir: Path) -> None:
        np.save(version_dir / REFERENCES, self.references, allow_pickle=False)
        if self.reference_thresholds is not None:
            np.save(version_dir / REFERENCE_THRESHOLDS, self.reference_thresholds, allow_pickle=False)
        if self.labels is not None:
            np.save(version_dir / REFERENCE_LABELS, self.labels, allow_pickle=False)

    def distances(self, features: np.ndarray) -> np.ndarray:
        return _nearest_to_unit(features, self._unit_references)

    def reference_distances(self, features: np.ndarray) -> np.ndarray:
        """Cosine distance from each row to every reference: ``(rows, references)``."""
        return 1.0 - l2_normalise(features) @ self._unit_references.T

    def is_unknown(self, features: np.ndarray) -> np.ndarray:
        if self.reference_thresholds is None:
            return self.distances(features) > self.threshold
        within = self.reference_distances(features) <= self.reference_thresholds
        return ~np.any(within, axis=1)
