"""Model search for the svm backend: the seed's three candidates, compared by cross-validation.

Each candidate is a ``StandardScaler`` + estimator pipeline searched with
``GridSearchCV``; the winner is refitted inside ``CalibratedClassifierCV`` so the
service returns calibrated probabilities (``SVC(probability=True)`` is deprecated).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from app.backends.svm import SklearnClassifier


def candidates(seed: int, quick: bool) -> dict[str, tuple[Any, dict[str, list]]]:
    """Estimators and their grids; ``quick`` shrinks the grids for tests."""
    if quick:
        return {
            "svm": (SVC(kernel="linear"), {"model__C": [1.0]}),
            "logistic_regression": (LogisticRegression(max_iter=2000), {"model__C": [1.0]}),
        }
    return {
        "svm": (SVC(), {"model__C": [0.1, 1, 10, 100], "model__kernel": ["linear", "rbf"]}),
        "random_forest": (RandomForestClassifier(random_state=seed), {"model__n_estimators": [50, 200]}),
        "logistic_regression": (LogisticRegression(max_iter=5000), {"model__C": [0.1, 1, 10]}),
    }


@dataclass
class SvmModel:
    estimator: Any
    summary: dict[str, Any]

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        return self.estimator.predict_proba(features)

    def save(self, version_dir: Path) -> None:
        SklearnClassifier.save(self.estimator, version_dir)


def fit(features: np.ndarray, labels: np.ndarray, seed: int, quick: bool = False) -> SvmModel:
    """Pick the best candidate by stratified k-fold CV accuracy (k = 5, fewer for tiny classes)."""
    folds = min(5, int(np.unique(labels, return_counts=True)[1].min()))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores: dict[str, dict[str, Any]] = {}
    best_name, best_search = "", None
    for name, (estimator, grid) in candidates(seed, quick).items():
        pipeline = Pipeline([("scale", StandardScaler()), ("model", estimator)])
        search = GridSearchCV(pipeline, grid, cv=cv, n_jobs=1).fit(features, labels)
        scores[name] = {
            "best_cv_accuracy": float(search.best_score_),
            "best_params": {k.removeprefix("model__"): v for k, v in search.best_params_.items()},
        }
        if best_search is None or search.best_score_ > best_search.best_score_:
            best_name, best_search = name, search
    # ensemble=False: one model fitted on all training faces, calibrated on out-of-fold
    # predictions; an ensemble of five would make the artifact five times larger.
    calibrated = CalibratedClassifierCV(
        clone(best_search.best_estimator_), cv=cv, method="sigmoid", ensemble=False
    )
    calibrated.fit(features, labels)
    summary = {
        "winner": best_name,
        "params": scores[best_name]["best_params"],
        "calibration": f"sigmoid, on {folds}-fold out-of-fold predictions",
        "candidates": scores,
    }
    return SvmModel(calibrated, summary)
