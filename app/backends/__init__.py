"""Classifier backends: map feature vectors to class probabilities.

A backend is chosen by ``CLASSIFIER_BACKEND`` and loads its model from a verified
artifact folder. Backends import their heavy libraries lazily, so the svm backend
never imports TensorFlow.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from app.artifacts import Manifest

BACKENDS = ("svm", "cnn")


class Classifier(ABC):
    """A trained model that returns one probability row per feature row, in manifest class order."""

    @abstractmethod
    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """``(n, n_classes)`` probabilities; rows sum to 1."""


def load_classifier(version_dir: Path, manifest: Manifest) -> Classifier:
    if manifest.backend == "svm":
        from app.backends.svm import SklearnClassifier

        return SklearnClassifier.load(version_dir, manifest)
    if manifest.backend == "cnn":
        try:
            from app.backends.cnn import KerasClassifier
        except ImportError as exc:
            raise RuntimeError(
                f"the cnn backend needs TensorFlow ({exc}): install the cnn extra, e.g. "
                "`CLASSIFIER_BACKEND=cnn make run` or `pip install -c constraints.txt -e .[cnn]`"
            ) from exc
        return KerasClassifier.load(version_dir, manifest)
    raise ValueError(f"unknown backend {manifest.backend!r}; choose one of {BACKENDS}")
