"""The svm backend's ONNX export: kept only where it answers as scikit-learn does, and served."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV

from app.artifact.file_names import SKLEARN_MODEL, SKLEARN_ONNX
from app.artifact.manifest import ArtifactError
from app.backends.sklearn_model import OnnxClassifier, SklearnClassifier
from tests.training.conftest import PEOPLE, Listing, subset
from training import sklearn_search
from training.fitting import FitOptions
from training.onnx_export import TOLERANCE, export_onnx

pytestmark = pytest.mark.slow


def test_the_calibrated_svm_is_served_from_its_export(embedded, tmp_path) -> None:
    features, labels = subset(embedded, 10)
    model = sklearn_search.fit(features, labels, (512,), FitOptions(quick=True))
    model.save(tmp_path)
    assert (tmp_path / SKLEARN_MODEL).is_file() and (tmp_path / SKLEARN_ONNX).is_file()
    assert model.summary["serving"].startswith("served by ONNX Runtime")
    served = SklearnClassifier.load(tmp_path, Listing(tmp_path, PEOPLE))
    assert isinstance(served, OnnxClassifier)
    # Every photo of these people, the 30 or so it was not trained on included.
    all_features, _ = embedded
    exported, expected = served.predict_proba(all_features), model.predict_proba(all_features)
    assert np.abs(exported - expected).max() <= TOLERANCE
    assert (exported.argmax(axis=1) == expected.argmax(axis=1)).all()
    np.testing.assert_allclose(exported.sum(axis=1), 1, atol=1e-5)


def test_one_person_is_served_by_scikit_learn(embedded, tmp_path) -> None:
    """The one-person rule has no converter: the version is served as before."""
    features, labels = subset(embedded, 6, PEOPLE[:1])
    model = sklearn_search.fit(features, labels, (512,), FitOptions(quick=True))
    model.save(tmp_path)
    assert not (tmp_path / SKLEARN_ONNX).exists()
    assert model.summary["serving"] == (
        "served by scikit-learn: skl2onnx cannot convert it (MissingShapeCalculator)"
    )
    served = SklearnClassifier.load(tmp_path, Listing(tmp_path, PEOPLE[:1]))
    assert isinstance(served, SklearnClassifier)
    np.testing.assert_array_equal(served.predict_proba(embedded[0]), 1.0)


def test_nearest_centroid_has_no_export(embedded) -> None:
    features, labels = subset(embedded, 3)
    centroid = sklearn_search.few_shot_candidates(3, len(labels))["nearest_centroid"][0]
    assert export_onnx(centroid.fit(features, labels), features)[0] is None


@pytest.mark.parametrize("neighbours", [1, 3])
def test_a_neighbour_vote_is_exported_only_with_one_neighbour(embedded, neighbours) -> None:
    """1-NN exports exactly; a distance-weighted vote over more is not tried (skl2onnx weighs it apart)."""
    features, labels = subset(embedded, 3)
    knn = sklearn_search.few_shot_candidates(3, len(labels))["knn"][0]
    exported, why = export_onnx(knn.set_params(model__n_neighbors=neighbours).fit(features, labels), features)
    if neighbours == 1:
        assert exported is not None and why.startswith("served by ONNX Runtime"), why
    else:
        assert exported is None and why.endswith("so its export is not tried"), why


def test_an_export_that_answers_otherwise_is_refused(embedded) -> None:
    """skl2onnx 1.20 converts the search's calibrated logistic regression, but its probabilities move."""
    features, labels = subset(embedded, 10)
    scaled = sklearn_search.search_candidates(42, quick=True)["logistic_regression"][0]
    model = CalibratedClassifierCV(scaled, cv=3, ensemble=False)
    exported, why = export_onnx(model.fit(features, labels), features)
    assert exported is None
    assert why.startswith("served by scikit-learn: its ONNX export differs on the training faces")


def test_an_export_that_does_not_fit_the_manifest_is_refused_at_load(embedded, tmp_path) -> None:
    """Caught when the model loads, not on the first photo (a tampered file fails its sha256 first)."""
    model = sklearn_search.fit(*subset(embedded, 10), (512,), FitOptions(quick=True))
    model.save(tmp_path)
    with pytest.raises(ArtifactError, match="gives 5 probabilities for 4 classes"):
        SklearnClassifier.load(tmp_path, Listing(tmp_path, PEOPLE[:4]))
    (tmp_path / SKLEARN_ONNX).write_bytes(b"not an onnx model")
    with pytest.raises(ArtifactError, match=r"model\.onnx cannot be run"):
        SklearnClassifier.load(tmp_path, Listing(tmp_path, PEOPLE))
