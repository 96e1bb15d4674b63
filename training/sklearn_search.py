"""Model choice for the svm (scikit-learn) backend: a rule that fits the photos there are.

With a few photos per person a nearest-neighbour or nearest-centroid rule on the
face embeddings is as good as it gets and needs no fitting to speak of; with
enough photos the model search (SVM, random forest, logistic regression, each on
a grid) joins in. Candidates are compared by stratified k-fold cross-validation
on the training faces (k = 5, fewer when a person has fewer photos). Where the
data rules cross-validation out (a person with one photo, or only one person),
the rule is fixed and the manifest says why.
"""

from __future__ import annotations

import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import skops.io as sio
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import RandomForestClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier, NearestCentroid
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import Normalizer, StandardScaler
from sklearn.svm import SVC

from app.artifact.file_names import SKLEARN_MODEL, SKLEARN_ONNX
from training.fitting import FitOptions
from training.onnx_export import export_onnx

#: Fewest photos of every person for the model search to be a candidate: below it a
#: 5-fold search and its probability calibration train on one or two faces per person.
SEARCH_MIN_PHOTOS = 5
#: scikit-learn's NearestCentroid divides by the within-class spread, undefined with one face per person.
CENTROID_MIN_PHOTOS = 3
MAX_FOLDS = 5
#: Equal cross-validation accuracy goes to the earlier: calibrated probabilities first.
PREFERENCE = ("svm", "logistic_regression", "random_forest", "nearest_centroid", "knn")


def few_shot_candidates(min_photos: int, n_train: int) -> dict[str, tuple[Any, dict[str, list]]]:
    """Rules on unit-length embeddings (Normalizer): Euclidean order is then cosine order.

    The neighbours are found with a ball tree: the brute-force search runs an OpenMP
    reduction, far slower for one face than the tree (docs/benchmarks.md, "Figures that were in docstrings").
    """
    neighbours = [k for k in (1, 3, 5) if k <= n_train]
    found = {
        "knn": (
            Pipeline(
                [
                    ("unit", Normalizer()),
                    ("model", KNeighborsClassifier(weights="distance", algorithm="ball_tree")),
                ]
            ),
            {"model__n_neighbors": neighbours},
        )
    }
    if min_photos >= CENTROID_MIN_PHOTOS:
        found["nearest_centroid"] = (Pipeline([("unit", Normalizer()), ("model", NearestCentroid())]), {})
    return found


def search_candidates(seed: int, quick: bool) -> dict[str, tuple[Any, dict[str, list]]]:
    """Estimators and their grids; ``quick`` shrinks the grids for tests."""
    models: dict[str, tuple[Any, dict[str, list]]]
    if quick:
        models = {
            "svm": (SVC(kernel="linear"), {"model__C": [1.0]}),
            "logistic_regression": (LogisticRegression(max_iter=2000), {"model__C": [1.0]}),
        }
    else:
        models = {
            "svm": (SVC(), {"model__C": [0.1, 1, 10, 100], "model__kernel": ["linear", "rbf"]}),
            "random_forest": (RandomForestClassifier(n_estimators=50, random_state=seed), {}),
            "logistic_regression": (LogisticRegression(max_iter=5000), {"model__C": [0.1, 1, 10]}),
        }
    return {
        name: (Pipeline([("scale", StandardScaler()), ("model", estimator)]), grid)
        for name, (estimator, grid) in models.items()
    }


@dataclass
class SvmModel:
    estimator: Any
    summary: dict[str, Any]
    #: The training faces, which the ONNX export is checked on when the model is saved.
    features: np.ndarray

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return self.estimator.predict_proba(features)

    def save(self, version_dir: Path) -> None:
        """The skops model, and its ONNX export if it answers alike; ``summary["serving"]`` says which.

        Exported here rather than when fitting: cross-validated evaluation fits a model per
        held-out photo and never saves them.
        """
        sio.dump(self.estimator, version_dir / SKLEARN_MODEL, compression=zipfile.ZIP_DEFLATED)
        exported, self.summary["serving"] = export_onnx(self.estimator, self.features)
        if exported is not None:
            (version_dir / SKLEARN_ONNX).write_bytes(exported)


def fit(
    features: np.ndarray, labels: np.ndarray, feature_shape: tuple[int, ...], options: FitOptions
) -> SvmModel:
    """The candidate with the best cross-validated accuracy, refitted on every training face.

    ``feature_shape`` is not needed: every candidate takes the flat rows. ``options.search_models``
    keeps only those of the model search's estimators (None: all of them): an enrolment build
    drops the slow ones that never win on face embeddings (docs/enrolment.md).
    """
    seed, quick, search_models = options.seed, options.quick, options.search_models
    people, counts = np.unique(labels, return_counts=True)
    fewest = int(counts.min())
    if len(people) == 1:
        model = DummyClassifier(strategy="prior").fit(features, labels)
        return SvmModel(
            model,
            features=features,
            summary=_fixed(
                "single_person",
                f"one person ({people[0]}): every face is them, unless the unknown rule says otherwise",
            ),
        )
    if fewest == 1:
        model = few_shot_candidates(1, len(labels))["knn"][0].set_params(model__n_neighbors=1)
        return SvmModel(
            model.fit(features, labels),
            features=features,
            summary=_fixed(
                "knn",
                f"{people[counts.argmin()]} has 1 training photo, so no cross-validation is "
                "possible; the nearest training face decides (with one photo per person, the "
                "nearest-centroid rule)",
                {"n_neighbors": 1},
            ),
        )
    folds = min(MAX_FOLDS, fewest)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    candidates = few_shot_candidates(fewest, len(labels) * (folds - 1) // folds)
    if fewest >= SEARCH_MIN_PHOTOS:
        candidates |= {
            name: candidate
            for name, candidate in search_candidates(seed, quick).items()
            if search_models is None or name in search_models
        }
    scores: dict[str, dict[str, Any]] = {}
    searches = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name, (pipeline, grid) in candidates.items():
            search = GridSearchCV(pipeline, grid, cv=cv, n_jobs=1).fit(features, labels)
            searches[name] = search
            scores[name] = {
                "cv_accuracy": float(search.best_score_),
                "best_params": {k.removeprefix("model__"): v for k, v in search.best_params_.items()},
            }
    winner = max(scores, key=lambda n: (scores[n]["cv_accuracy"], -PREFERENCE.index(n)))
    best = searches[winner].best_estimator_
    summary = {
        "winner": winner,
        "architecture": architecture(winner, scores[winner]["best_params"]),
        "params": scores[winner]["best_params"],
        "choice": f"highest {folds}-fold cross-validated accuracy on the training faces "
        f"({scores[winner]['cv_accuracy']:.1%}); ties go to calibrated probabilities, then the "
        "simpler rule"
        + (
            ""
            if fewest >= SEARCH_MIN_PHOTOS
            else f"; the model search needs {SEARCH_MIN_PHOTOS} photos "
            f"of every person and the fewest here is {fewest}"
        ),
        "search": f"Stratified {folds}-fold cross-validation on the training faces.",
        "candidates": scores,
    }
    if winner in PREFERENCE[:3]:
        # ensemble=False: one model fitted on all training faces, calibrated on out-of-fold
        # predictions; an ensemble of five would make the artifact five times larger.
        best = CalibratedClassifierCV(clone(best), cv=cv, method="sigmoid", ensemble=False)
        summary["calibration"] = f"sigmoid, on {folds}-fold out-of-fold predictions"
    return SvmModel(best.fit(features, labels), summary, features)


def _fixed(winner: str, why: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The summary of a rule chosen by the data's shape rather than by cross-validation."""
    return {
        "winner": winner,
        "architecture": architecture(winner, params or {}),
        "params": params or {},
        "choice": why,
        "search": why,
        "candidates": {},
    }


def architecture(winner: str, params: dict[str, Any]) -> str:
    """What the chosen model is, in words: the backend is called ``svm`` whatever wins."""
    if winner == "svm":
        return f"{'linear' if params.get('kernel') == 'linear' else 'RBF-kernel'} SVM"
    if winner == "knn":
        return f"{params.get('n_neighbors', 1)}-nearest-neighbour vote (cosine)"
    return {
        "logistic_regression": "logistic regression",
        "random_forest": "random forest",
        "nearest_centroid": "nearest centroid (cosine)",
        "single_person": "one person (every face is them)",
    }.get(winner, winner)
