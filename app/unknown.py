"""Open-set rule: say "unknown" for a face that is far from every known person.

A closed-set classifier always picks one of its classes, so a stranger would be
labelled as somebody. Faces of one person cluster in embedding space; a face whose
cosine distance to the nearest class centroid is above a threshold calibrated at
training time (on held-out folds, never on the test split) is declared unknown.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

CENTROIDS_FILE = "centroids.npy"


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def class_centroids(features: np.ndarray, labels: np.ndarray, classes: list[str]) -> np.ndarray:
    """The unit-length mean direction of each class, in ``classes`` order."""
    unit = l2_normalise(features)
    return l2_normalise(np.stack([unit[labels == c].mean(axis=0) for c in classes]))


def nearest_centroid_distance(features: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Cosine distance (0 same direction .. 2 opposite) from each row to its nearest centroid."""
    return 1.0 - (l2_normalise(features) @ centroids.T).max(axis=1)


class UnknownRule:
    """Flags faces farther than ``threshold`` from every class centroid."""

    def __init__(self, centroids: np.ndarray, threshold: float) -> None:
        self.centroids = centroids
        self.threshold = threshold

    @classmethod
    def load(cls, version_dir: Path, threshold: float) -> UnknownRule:
        return cls(np.load(version_dir / CENTROIDS_FILE, allow_pickle=False), threshold)

    def save(self, version_dir: Path) -> None:
        np.save(version_dir / CENTROIDS_FILE, self.centroids, allow_pickle=False)

    def is_unknown(self, features: np.ndarray) -> np.ndarray:
        return nearest_centroid_distance(features, self.centroids) > self.threshold
