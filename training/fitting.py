"""What every training backend takes and gives back, and the registry that finds them.

A backend's ``fit(features, labels, feature_shape, options)`` searches its models on the
training faces and returns a ``TrainedModel``; ``training.trained_artifact`` wraps it into a version.
The names match the serving side's ``app.backends.BACKENDS`` (a test keeps them in step).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from app.registry import Entry, Registry


@dataclass(frozen=True)
class FitOptions:
    backend: str = "svm"
    seed: int = 42
    #: Small search spaces, for tests and smoke runs.
    quick: bool = False
    #: cnn search budget: trials, and the most epochs per trial (None: the backend's default).
    max_trials: int | None = None
    epochs: int | None = None
    #: svm: the model search's estimators to try (None: all); see training.sklearn_search.fit.
    search_models: frozenset[str] | None = None


class TrainedModel(Protocol):
    summary: dict[str, Any]

    def predict_proba(self, features: np.ndarray) -> np.ndarray: ...

    def save(self, version_dir: Path) -> None: ...


TRAINERS = Registry(
    "training backend",
    {
        "svm": Entry(
            "training.sklearn_search:fit",
            "scikit-learn model search with cross-validation",
            install_hint="install the train extra: `pip install -c constraints.txt -e .[train]`",
        ),
        "cnn": Entry(
            "training.keras_search:fit",
            "KerasTuner search over Keras networks on a validation split",
            install_hint="install the cnn extra: `pip install -c constraints.txt -e .[cnn]`",
        ),
    },
)
