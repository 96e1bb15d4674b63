"""The scikit-learn backend: a fitted estimator stored with skops, not pickle.

skops refuses to build any type that is not on an allow-list, so a crafted model
file cannot run code on load; the manifest's sha256 is checked before that too.

A photo's faces are a handful of rows, for which scikit-learn's ``predict_proba`` is
nearly all input checking: 2.1 ms for one face with a calibrated linear SVM, while the
service holds the GIL (docs/benchmarks.md, issue 14). For that model, the one training
picks by default, ``CalibratedSVC`` repeats the same arithmetic on the fitted attributes
without the checks, and is used only if it gives bit for bit the answers of
``predict_proba`` on test rows when the model loads.
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path

import numpy as np
import skops.io as sio
from scipy.special import expit
from sklearn.calibration import CalibratedClassifierCV, _SigmoidCalibration
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, _libsvm
from sklearn.svm._base import LIBSVM_IMPL
from sklearn.utils.multiclass import _ovr_decision_function

from app.artifact_files import SKLEARN_MODEL
from app.artifacts import ArtifactError, Manifest
from app.backends import Classifier

log = logging.getLogger("app.model")

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
        self._predict_proba = estimator.predict_proba
        try:
            # Private attributes of scikit-learn 1.9: another release may rename them.
            fast = CalibratedSVC.build(estimator)
            same = fast is not None and fast.matches()
        except (AttributeError, TypeError, ValueError) as exc:
            fast, same = None, False
            log.warning("the unchecked SVC path failed (%s); scikit-learn answers", exc)
        if fast is not None and same:
            self._predict_proba = fast.predict_proba
        elif fast is not None:
            log.warning("the unchecked SVC path differs from scikit-learn's; scikit-learn answers")

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
        return self._predict_proba(features)

    @staticmethod
    def save(estimator, version_dir: Path) -> None:
        sio.dump(estimator, version_dir / SKLEARN_MODEL, compression=zipfile.ZIP_DEFLATED)


#: One calibrated classifier: its scaler, its SVC, one calibrator per class, the classes' places.
_Part = tuple[StandardScaler, SVC, list[_SigmoidCalibration], np.ndarray]


class CalibratedSVC:
    """``CalibratedClassifierCV(method="sigmoid")`` over ``Pipeline([StandardScaler, SVC])``, unchecked.

    The steps of scikit-learn 1.9's ``predict_proba`` for that model, in its order and dtypes
    (scaling in the input's float type, libsvm's decision function in float64, the one-vs-rest
    vote, Platt's sigmoid per class, normalisation), minus the input validation around each.
    ``build`` returns None for any other model; ``matches`` is the proof that it is the same.
    Rows that are not a 2-D float32 or float64 array go to scikit-learn.
    """

    def __init__(self, estimator, parts: list[_Part]) -> None:
        self.estimator = estimator
        self.parts = parts
        self.n_classes = len(estimator.classes_)

    @classmethod
    def build(cls, estimator) -> CalibratedSVC | None:
        if type(estimator) is not CalibratedClassifierCV or estimator.method != "sigmoid":
            return None
        parts = []
        classes = estimator.classes_
        for calibrated in estimator.calibrated_classifiers_:
            pipeline = calibrated.estimator
            if type(pipeline) is not Pipeline or len(pipeline.steps) != 2:
                return None
            (_, scaler), (_, svc) = pipeline.steps
            if (
                type(scaler) is not StandardScaler
                or type(svc) is not SVC
                or callable(svc.kernel)
                or svc.kernel == "precomputed"
                or svc._sparse
                or calibrated.method != "sigmoid"
                or not np.array_equal(calibrated.classes, classes)
                or any(type(c) is not _SigmoidCalibration for c in calibrated.calibrators)
            ):
                return None
            # Where each of the SVC's classes sits among the calibrated ones (LabelEncoder's order).
            positions = np.searchsorted(np.sort(calibrated.classes), svc.classes_)
            parts.append((scaler, svc, list(calibrated.calibrators), positions))
        return cls(estimator, parts) if parts else None

    def matches(self, rows: int = 64) -> bool:
        """Bit for bit scikit-learn's answers on random rows, one at a time and all at once."""
        n_features = self.parts[0][0].n_features_in_
        probe = np.random.default_rng(0).standard_normal((rows, n_features))
        batches: list[np.ndarray] = [probe, probe.astype(np.float32)]
        batches += [probe[i : i + 1].astype(np.float32) for i in range(8)]
        return all(np.array_equal(self.predict_proba(x), self.estimator.predict_proba(x)) for x in batches)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        if features.ndim != 2 or features.dtype not in (np.float32, np.float64):
            return self.estimator.predict_proba(features)
        n_classes = self.n_classes
        mean = np.zeros((features.shape[0], n_classes))
        for scaler, svc, calibrators, positions in self.parts:
            x = np.array(features)  # StandardScaler scales a copy, in the rows' own float type
            if scaler.with_mean:
                x -= np.asarray(scaler.mean_, dtype=x.dtype)
            if scaler.with_std:
                x /= np.asarray(scaler.scale_, dtype=x.dtype)
            decision = _libsvm.decision_function(  # as SVC._dense_decision_function calls it
                np.ascontiguousarray(x, dtype=np.float64),
                svc.support_,
                svc.support_vectors_,
                svc._n_support,
                svc._dual_coef_,
                svc._intercept_,
                svc._probA,
                svc._probB,
                svm_type=LIBSVM_IMPL.index(svc._impl),
                kernel=svc.kernel,
                degree=svc.degree,
                cache_size=svc.cache_size,
                coef0=svc.coef0,
                gamma=svc._gamma,
            )
            if len(svc.classes_) == 2:
                decision = -decision.ravel()
            elif svc.decision_function_shape == "ovr":
                decision = _ovr_decision_function(decision < 0, -decision, len(svc.classes_))
            if decision.ndim == 1:
                decision = decision.reshape(-1, 1)
            proba = np.zeros((features.shape[0], n_classes))
            for position, column, calibrator in zip(positions, decision.T, calibrators, strict=False):
                index = position + 1 if n_classes == 2 else position
                proba[:, index] = expit(-(calibrator.a_ * np.ravel(column) + calibrator.b_))
            if n_classes == 2:
                proba[:, 0] = 1.0 - proba[:, 1]
            else:
                denominator = np.sum(proba, axis=1)[:, np.newaxis]
                uniform = np.full_like(proba, 1 / n_classes)
                proba = np.divide(proba, denominator, out=uniform, where=denominator != 0)
            proba[(proba > 1.0) & (proba <= 1.0 + 1e-5)] = 1.0
            mean += proba
        mean /= len(self.parts)
        return mean
