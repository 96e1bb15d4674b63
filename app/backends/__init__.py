"""Classifier backends: map feature vectors to class probabilities.

A backend is chosen by ``CLASSIFIER_BACKEND`` and loads its model from a verified
artifact folder. Backends import their heavy libraries lazily, so the svm backend
never imports TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from app.artifact.manifest import Manifest
from app.pipeline.features import FEATURES
from app.registry import Entry, Registry

#: The env values ``svm`` and ``cnn`` are kept from the seed; the descriptions say what each
#: really is (the manifest's ``classifier.architecture`` names the trained model exactly).
BACKENDS = Registry(
    "classifier backend",
    {
        "svm": Entry(
            "app.backends.sklearn_model:SklearnClassifier",
            "a scikit-learn classifier chosen by cross-validation (linear or RBF SVM, logistic "
            "regression, random forest, nearest neighbours or centroid)",
        ),
        "cnn": Entry(
            "app.backends.keras_model:KerasClassifier",
            "a Keras network chosen by KerasTuner (a dense head on embeddings, or Conv2D layers on pixels)",
            install_hint="install the cnn extra, e.g. `CLASSIFIER_BACKEND=cnn make run` or "
            "`pip install -c constraints.txt -e .[cnn]`",
        ),
    },
)


class Classifier(Protocol):
    """A trained model that returns one probability row per feature row, in manifest class order.

    A protocol rather than a base class: a model training has just fitted answers the same
    call, so it serves from memory (cross-validation) without being wrapped.
    """

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """``(n, n_classes)`` probabilities; rows sum to 1."""


def describe_model(manifest: Manifest) -> str:
    """What a trained model is, in words: its classifier on its features.

    The manifest's ``classifier.architecture`` names the model training chose; a version
    written before that field existed falls back to the backend's description.
    """
    if not manifest.classes:
        return "no classifier: the model knows nobody, so every face is unknown"
    classifier = manifest.classifier.get("architecture") or BACKENDS.describe(manifest.backend)
    return f"{classifier} on {FEATURES.describe(manifest.features.name)}"


class KnowsNobody:
    """The classifier of a version without classes (every person erased): no probability columns."""

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return np.zeros((len(features), 0), np.float32)


def load_classifier(version_dir: Path, manifest: Manifest) -> Classifier:
    """The version's classifier; a version that knows nobody has no model file and needs none."""
    if not manifest.classes:
        return KnowsNobody()
    return BACKENDS.load(manifest.backend).load(version_dir, manifest)
