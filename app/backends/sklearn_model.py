"""The scikit-learn backend: a fitted estimator stored with skops, served through ONNX when it can be.

skops refuses to build any type that is not on an allow-list, so a crafted model
file cannot run code on load; the manifest's sha256 is checked before that too.

Training also exports the model to ONNX when skl2onnx converts it with the same
answers (training/onnx_export.py). The service then runs that file with ONNX Runtime
and never imports scikit-learn: a calibrated SVM re-validates its input at every layer,
and importing scikit-learn and skops is most of a start-up's CPU (docs/benchmarks.md,
"The svm model served through its skl2onnx export"; bench/startup.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from app.artifact.file_names import SKLEARN_MODEL, SKLEARN_ONNX
from app.artifact.manifest import ArtifactError, Manifest
from app.backends import Classifier
from app.pipeline.onnx_session import session_from_file

#: Types beyond skops' defaults that our pipelines contain; anything else is refused.
TRUSTED_TYPES = frozenset(
    {
        "sklearn.calibration.CalibratedClassifierCV",
        "sklearn.dummy.DummyClassifier",
        "sklearn.neighbors._classification.KNeighborsClassifier",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.neighbors._nearest_centroid.NearestCentroid",
        "sklearn.preprocessing._data.Normalizer",
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.model_selection._split.StratifiedKFold",
        "sklearn.pipeline.Pipeline",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._label.LabelEncoder",
        "sklearn.svm._classes.SVC",
        "sklearn.svm._classes.LinearSVC",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.tree._tree.Tree",
        "sklearn.frozen._frozen.FrozenEstimator",
        "builtins.slice",
        "numpy.dtype",
    }
)
#: The exported graph's output that holds the class probabilities (skl2onnx's name for it).
PROBABILITIES = "probabilities"


class SklearnClassifier(Classifier):
    """A fitted estimator in memory: what training cross-validates, and the fallback when serving."""

    def __init__(self, estimator: Any) -> None:
        self.estimator = estimator

    @classmethod
    def load(cls, version_dir: Path, manifest: Manifest) -> Classifier:
        """The version's ONNX export when it has one, else its skops model."""
        if SKLEARN_ONNX in manifest.files:
            return OnnxClassifier.load(version_dir, manifest)
        return cls(load_estimator(version_dir, manifest))

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return self.estimator.predict_proba(features)


class OnnxClassifier(Classifier):
    """The estimator's ONNX export; an ``InferenceSession`` may be run by several threads at once."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.input = session.get_inputs()[0].name

    @classmethod
    def load(cls, version_dir: Path, manifest: Manifest) -> OnnxClassifier:
        path = version_dir / SKLEARN_ONNX
        try:
            # One thread: the graph is a few small matrix products, quicker than a hand-off.
            classifier = cls(session_from_file(path, intra_op_threads=1))
            width = classifier.session.get_inputs()[0].shape[1]
            columns = classifier.predict_proba(np.zeros((1, width), np.float32)).shape[1]
        except Exception as error:  # ONNX Runtime raises its own types for a malformed graph
            raise ArtifactError(f"{path} cannot be run: {error}") from error
        if columns != len(manifest.class_ids):
            raise ArtifactError(f"{path} gives {columns} probabilities for {len(manifest.class_ids)} classes")
        return classifier

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return self.session.run([PROBABILITIES], {self.input: features.astype(np.float32, copy=False)})[0]


def load_estimator(version_dir: Path, manifest: Manifest) -> Any:
    """The version's skops model, built only from trusted types, with the manifest's classes."""
    import skops.io as sio

    path = version_dir / SKLEARN_MODEL
    listed = sio.get_untrusted_types(file=path)
    untrusted = set(listed) - TRUSTED_TYPES
    if untrusted:
        raise ArtifactError(f"{path} contains types that are not trusted: {sorted(untrusted)}")
    estimator = sio.load(path, trusted=sorted(listed))
    model_classes = [str(c) for c in estimator.classes_]
    if model_classes != manifest.class_ids:
        raise ArtifactError(f"{path} classes {model_classes} differ from the manifest's")
    return estimator
