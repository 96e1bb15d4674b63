"""Export a fitted scikit-learn model to ONNX for the service, only where the export answers alike.

skl2onnx converts most of the models the search can choose, not all of them (nearest
centroid and the one-person rule have no converter), and an export can answer otherwise
(a calibrated logistic regression, with scikit-learn 1.9). So every export is run beside
the estimator on the training faces and kept only when its probabilities agree within
``TOLERANCE``; otherwise the version is served by scikit-learn itself, as before, and the
manifest says why.

One model is not even tried: a neighbour vote weighted by distance over more than one
neighbour, the few-photo rule a retrain after adding a person often chooses. skl2onnx
weighs the neighbours otherwise (1-NN exports exactly), so the check always refused it,
after a warm retrain had paid to import skl2onnx and to convert and run it
(docs/benchmarks.md, "Retraining warm: the garbage collector"). skl2onnx is imported only
when an export is tried.
"""

from __future__ import annotations

import warnings
from importlib.util import find_spec
from typing import Any

import numpy as np
import onnxruntime as ort
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline

from app.backends.sklearn_model import OnnxClassifier

# Without skl2onnx (the train extra) the svm trainer still fails to load, one line with the
# extra's install hint (app.registry.MissingExtra), though skl2onnx is imported only for an export.
if find_spec("skl2onnx") is None:
    raise ModuleNotFoundError("No module named 'skl2onnx'", name="skl2onnx")

#: Largest difference allowed between the export's probabilities and scikit-learn's
#: (float32 against float64 arithmetic differs by about 1e-7).
TOLERANCE = 1e-5


def export_onnx(estimator: Any, features: np.ndarray) -> tuple[bytes | None, str]:
    """The ONNX model checked on ``features`` (the training faces), or None; and how it was decided."""
    if _weighted_vote(estimator):
        return None, (
            "served by scikit-learn: skl2onnx weighs a distance-weighted neighbour vote otherwise, "
            "so its export is not tried"
        )
    from skl2onnx import to_onnx

    rows = features.astype(np.float32)
    try:
        with warnings.catch_warnings():
            # skl2onnx 1.20 reads SVC.probA_, which scikit-learn 1.9 deprecates; should a later
            # release drop it, the conversion fails here and scikit-learn serves.
            warnings.simplefilter("ignore", FutureWarning)
            model = to_onnx(estimator, rows[:1], options={"zipmap": False}).SerializeToString()
    except (RuntimeError, NotImplementedError, TypeError, ValueError) as error:
        return None, f"served by scikit-learn: skl2onnx cannot convert it ({error.__class__.__name__})"
    # Run as the service runs it (app/backends/sklearn_model.py), so what is checked is what serves.
    served = OnnxClassifier(ort.InferenceSession(model, providers=["CPUExecutionProvider"]))
    exported = served.predict_proba(rows)
    expected = estimator.predict_proba(rows)
    difference = float(np.abs(exported - expected).max())
    if difference > TOLERANCE or (exported.argmax(axis=1) != expected.argmax(axis=1)).any():
        return None, (
            "served by scikit-learn: its ONNX export differs on the training faces "
            f"(by up to {difference:.2g})"
        )
    return model, (
        f"served by ONNX Runtime: the skl2onnx export agrees with scikit-learn within {difference:.1g} "
        "on every training face"
    )


def _weighted_vote(estimator: Any) -> bool:
    """A neighbour vote over more than one neighbour, weighted by distance (see the module's docstring)."""
    model = estimator[-1] if isinstance(estimator, Pipeline) else estimator
    return isinstance(model, KNeighborsClassifier) and model.weights == "distance" and model.n_neighbors > 1
