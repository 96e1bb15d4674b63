"""The scikit-learn backend: a fitted estimator stored with skops, not pickle.

skops refuses to build any type that is not on an allow-list, so a crafted model
file cannot run code on load; the manifest's sha256 is checked before that too.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import skops.io as sio

from app.artifact_files import SKLEARN_MODEL
from app.artifacts import ArtifactError, Manifest
from app.backends import Classifier

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


class SklearnClassifier(Classifier):
    def __init__(self, estimator) -> None:
        self.estimator = estimator

    @classmethod
    def load(cls, version_dir: Path, manifest: Manifest) -> SklearnClassifier:
        path = version_dir / SKLEARN_MODEL
        listed = sio.get_untrusted_types(file=path)
        untrusted = set(listed) - TRUSTED_TYPES
        if untrusted:
            raise ArtifactError(f"{path} contains types that are not trusted: {sorted(untrusted)}")
        estimator = sio.load(path, trusted=sorted(listed))
        model_classes = [str(c) for c in estimator.classes_]
        if model_classes != manifest.class_ids:
            raise ArtifactError(f"{path} classes {model_classes} differ from the manifest's")
        return cls(estimator)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return self.estimator.predict_proba(features)

    @staticmethod
    def save(estimator, version_dir: Path) -> None:
        sio.dump(estimator, version_dir / SKLEARN_MODEL, compression=zipfile.ZIP_DEFLATED)
