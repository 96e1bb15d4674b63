"""Shortcuts of the served svm model answer exactly as the long way does.

The backend's unchecked path for calibrated SVMs against scikit-learn's ``predict_proba``,
and the unknown rule's normalised references against ``nearest_distance``.

Real embeddings: the training faces of the committed svm model (its references.npy), and
models fitted on them the way training fits its candidates.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from app.artifacts import load_manifest, resolve_version_dir
from app.backends import load_classifier
from app.backends.sklearn_model import CalibratedSVC, SklearnClassifier
from app.unknown import UnknownRule, nearest_distance
from tests.conftest import ARTIFACTS


@pytest.fixture(scope="module")
def committed():
    version_dir = resolve_version_dir(ARTIFACTS, "svm")
    classifier = load_classifier(version_dir, load_manifest(version_dir))
    embeddings = np.load(version_dir / "references.npy")
    return classifier, embeddings


def test_the_committed_model_takes_the_unchecked_path_and_answers_the_same(committed) -> None:
    classifier, embeddings = committed
    assert isinstance(classifier, SklearnClassifier)
    assert isinstance(classifier._predict_proba.__self__, CalibratedSVC)
    expected = classifier.estimator.predict_proba(embeddings)
    assert np.array_equal(classifier.predict_proba(embeddings), expected)
    for row in range(0, len(embeddings), 17):  # one face per photo, the common case
        assert np.array_equal(classifier.predict_proba(embeddings[row : row + 1]), expected[row : row + 1])


@pytest.mark.parametrize(
    ("kernel", "people", "ensemble"),
    [("rbf", 5, False), ("linear", 2, False), ("linear", 3, True)],
    ids=["rbf", "two-people", "ensemble"],
)
def test_other_calibrated_svms_answer_the_same(committed, kernel: str, people: int, ensemble: bool) -> None:
    classifier, embeddings = committed
    labels = np.array(classifier.estimator.classes_)[classifier.predict_proba(embeddings).argmax(axis=1)]
    keep = np.isin(labels, np.unique(labels)[:people])
    model = CalibratedClassifierCV(
        Pipeline([("scale", StandardScaler()), ("model", SVC(kernel=kernel))]),
        cv=3,
        method="sigmoid",
        ensemble=ensemble,
    ).fit(embeddings[keep], labels[keep])
    fast = CalibratedSVC.build(model)
    assert fast is not None and fast.matches()
    assert np.array_equal(fast.predict_proba(embeddings), model.predict_proba(embeddings))
    assert SklearnClassifier(model)._predict_proba.__self__ is not model


def test_any_other_model_is_answered_by_scikit_learn(committed) -> None:
    classifier, embeddings = committed
    labels = classifier.estimator.predict(embeddings)
    model = CalibratedClassifierCV(
        Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(max_iter=2000))]),
        cv=3,
        method="sigmoid",
        ensemble=False,
    ).fit(embeddings, labels)
    assert CalibratedSVC.build(model) is None
    assert SklearnClassifier(model)._predict_proba == model.predict_proba


def test_the_unknown_rule_measures_as_nearest_distance_does(committed) -> None:
    _, embeddings = committed
    version_dir = resolve_version_dir(ARTIFACTS, "svm")
    rule = UnknownRule.load(version_dir, load_manifest(version_dir).unknown.threshold or 0.0)
    strangers = np.random.default_rng(0).standard_normal((20, embeddings.shape[1])).astype(np.float32)
    for rows in (embeddings, embeddings[:1], strangers):
        assert np.array_equal(rule.distances(rows), nearest_distance(rows, rule.references))
