"""The unknown rule keeps its references normalised once; it measures as ``nearest_distance`` does.

Real embeddings: the training faces of the committed svm model (its references.npy).
"""

from __future__ import annotations

import numpy as np

from app.artifact.manifest import load_manifest, resolve_version_dir
from app.model.unknown import UnknownRule, nearest_distance
from tests.conftest import ARTIFACTS


def test_the_unknown_rule_measures_as_nearest_distance_does() -> None:
    version_dir = resolve_version_dir(ARTIFACTS, "svm")
    embeddings = np.load(version_dir / "references.npy")
    rule = UnknownRule.load(version_dir, load_manifest(version_dir).unknown.threshold or 0.0)
    strangers = np.random.default_rng(0).standard_normal((20, embeddings.shape[1])).astype(np.float32)
    for rows in (embeddings, embeddings[:1], strangers):
        assert np.array_equal(rule.distances(rows), nearest_distance(rows, rule.references))
