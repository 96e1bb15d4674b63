"""Grouping embeddings drawn around random centres: in any order, whole or in cells, the same groups.

The synthetic people are far apart and their faces spread at the threshold's own scale, so
the right groups are known; the real faces are in tests/test_cluster.py and bench/cluster.py.
The re-ranking by shared neighbours is checked here not to join what the plain rule keeps
apart; that it joins more of one person's real faces is tests/test_grouping_faces24.py.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from app.artifact.manifest import Manifest, StageSpec
from app.cluster.embedding import Joint, joint_for
from app.cluster.grouping import (
    GROUPING_RATIO,
    REACH,
    GroupingError,
    attach,
    drop_small,
    group,
    grouping_threshold,
    neighbour_distances,
)
from app.model.same_person import same_person_distance

THRESHOLD = 0.55


def people(count: int, faces: int, dimension: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``faces`` embeddings around each of ``count`` random centres; who each is."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(count, dimension))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    who = np.repeat(np.arange(count), faces)
    spread = (THRESHOLD / 1.5) / (1 - THRESHOLD / 1.5)  # two faces of one person ~ THRESHOLD / 1.5 apart
    return centres[who] + rng.normal(size=(len(who), dimension)) * math.sqrt(spread / dimension), who


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return adjusted_rand_score(a, b) == 1.0


def test_each_person_is_one_group_in_any_order() -> None:
    embeddings, who = people(30, 12)
    labels = group(embeddings, THRESHOLD)
    assert same_partition(labels, who)
    order = np.random.default_rng(1).permutation(len(who))
    assert np.array_equal(group(embeddings[order], THRESHOLD), labels[order])  # the same numbers, too


def test_cells_give_the_groups_one_piece_gives() -> None:
    """Above ``block`` rows the faces are cut into k-means cells and the groups joined across them."""
    embeddings, who = people(60, 20, seed=2)
    whole = group(embeddings, THRESHOLD)
    in_cells = group(embeddings, THRESHOLD, block=150)
    assert same_partition(whole, who) and same_partition(in_cells, who)
    order = np.random.default_rng(3).permutation(len(who))
    assert np.array_equal(group(embeddings[order], THRESHOLD, block=150), in_cells[order])


def test_two_people_closer_than_the_threshold_on_average_are_one_group() -> None:
    """The rule is the mean distance between two groups' faces, not their nearest pair."""
    near = np.array([[1.0, 0.0, 0.0], [np.cos(0.2), np.sin(0.2), 0.0]])
    far = np.array([[0.0, 0.0, 1.0]])
    labels = group(np.vstack([near, far]), threshold=0.1)
    assert labels[0] == labels[1] != labels[2]


def test_faces_that_share_no_neighbour_keep_the_plain_rule() -> None:
    """Re-ranking only relaxes the cut as neighbourhoods overlap: two faces alone, or two tight
    people each among their own faces, are joined only within the threshold, as before."""
    rng = np.random.default_rng(4)
    for distance in (THRESHOLD - 0.05, THRESHOLD + 0.05):
        pair = np.array([[1.0, 0.0], [1.0 - distance, np.sqrt(1 - (1 - distance) ** 2)]])
        cosine = 1.0 - pair @ pair.T
        assert neighbour_distances(cosine, THRESHOLD)[0, 1] == pytest.approx(
            distance / REACH + (1 - 1 / REACH) * THRESHOLD
        )
        labels = group(pair, THRESHOLD)
        assert (labels[0] == labels[1]) == (distance < THRESHOLD)
    # two look-alikes: centres a cosine distance of 1.3 x the threshold apart (within REACH x the
    # threshold), each with 10 faces close around it and so sharing no neighbour with the other
    apart = 1.3 * THRESHOLD
    centres = np.zeros((2, 64))
    centres[0, 0], centres[1, :2] = 1.0, (1.0 - apart, np.sqrt(1 - (1 - apart) ** 2))
    faces = np.repeat(centres, 10, axis=0) + rng.normal(size=(20, 64)) * 0.01
    assert same_partition(group(faces, THRESHOLD), np.repeat([0, 1], 10))


def test_small_groups_drop_and_low_quality_faces_join_only_a_close_group() -> None:
    assert drop_small(np.array([0, 0, 1, 2, 2])).tolist() == [0, 0, -1, 2, 2]
    embeddings, who = people(3, 5)
    labels = drop_small(group(embeddings, THRESHOLD))
    near = embeddings[who == 0].mean(axis=0)  # where person 0's faces centre
    stray = np.eye(embeddings.shape[1])[0]  # nobody
    rows = np.vstack([embeddings, near, stray])
    candidates = np.arange(len(rows)) >= len(embeddings)
    joined, distance = attach(rows, np.append(labels, [-1, -1]), candidates, THRESHOLD / GROUPING_RATIO)
    assert same_partition(joined[: len(who)], who)
    assert joined[-2] == labels[0] and distance[-2] < 1e-3
    assert joined[-1] == -1 and np.isnan(distance[-1])


def manifest_of(features: dict[str, Any], **more: Any) -> Manifest:
    """A one-person model's manifest with these features (and any other fields)."""
    return Manifest.model_validate(
        {
            "backend": "svm",
            "version": "v1",
            "created": "2026-01-01T00:00:00Z",
            "classes": [{"id": "a", "name": "A"}],
            "detector": {"name": "centerface"},
            "features": features,
            **more,
        }
    )


def test_a_model_without_a_same_person_distance_cannot_group() -> None:
    manifest = manifest_of({"name": "pixels"})
    with pytest.raises(GroupingError, match="no same-person distance"):
        grouping_threshold(manifest)
    manifest.unknown.method, manifest.unknown.threshold = "nearest_distance", 0.4
    assert grouping_threshold(manifest) == pytest.approx(GROUPING_RATIO * 0.4)


def test_joined_embeddings_measure_the_mean_of_both_distances_on_the_served_scale() -> None:
    """Cosine distances between joined rows are the served and the scaled companion distance's mean
    (times ``2 / (1 + scale)``), so means and centres of groups work on them as on one embedding."""
    rng = np.random.default_rng(5)
    served, companion = rng.normal(size=(8, 512)), rng.normal(size=(8, 128))
    joint = Joint(StageSpec(name="dlib", params={"margin": 0.2}), scale=6.8)
    rows = joint.join(served, companion).astype(np.float64)
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-6)

    def cosine(x: np.ndarray) -> np.ndarray:
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        return 1.0 - unit @ unit.T

    mean = (cosine(served) + 6.8 * cosine(companion)) / 2
    assert np.allclose(1.0 - rows @ rows.T, joint.distance(1.0) * mean, atol=1e-5)
    # A dlib model joined with FaceNet (the inverse scale) gives the very same distances: the same groups.
    swapped = Joint(StageSpec(name="facenet", params={}), scale=1 / 6.8).join(companion, served)
    assert np.allclose(1.0 - swapped.astype(np.float64) @ swapped.T, 1.0 - rows @ rows.T, atol=1e-5)


def test_a_facenet_model_is_grouped_with_dlib_on_facenets_scale() -> None:
    manifest = manifest_of(
        {"name": "facenet", "params": {"margin": 0.2, "crop": "arcface"}},
        unknown={"method": "nearest_distance", "threshold": 0.4},
    )
    joint = joint_for(manifest)
    assert joint is not None and joint.companion.name == "dlib"
    facenet = same_person_distance("facenet", {"margin": 0.2, "crop": "arcface"})
    dlib = same_person_distance("dlib", {"margin": 0.2})
    assert facenet is not None and dlib is not None
    assert joint.scale == pytest.approx(facenet / dlib)
    assert grouping_threshold(manifest) == pytest.approx(GROUPING_RATIO * 0.4 * 2 / (1 + facenet / dlib))
    manifest.features.params = {"margin": 0.3, "crop": "arcface"}  # no distance measured for this crop
    assert joint_for(manifest) is None
    assert grouping_threshold(manifest) == pytest.approx(GROUPING_RATIO * 0.4)
