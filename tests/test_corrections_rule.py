"""The rule by which users' corrections decide a face's label (app/model/corrections.py), on
embeddings drawn here: a few unit vectors whose distances are known by construction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.model.corrections import Corrected, Correction, Corrections
from app.model.unknown import UnknownRule, l2_normalise

NOBODY = "unknown"


def towards(base: np.ndarray, other: np.ndarray, t: float) -> np.ndarray:
    """A unit vector ``t`` of the way from ``base`` to ``other``."""
    return l2_normalise(((1 - t) * base + t * other)[None])[0]


@pytest.fixture
def space() -> dict[str, np.ndarray]:
    axes = np.eye(8, dtype=np.float32)
    return {"p": axes[0], "q": axes[1], "stranger": axes[2], "elsewhere": axes[3]}


@pytest.fixture
def rule(space: dict[str, np.ndarray]) -> UnknownRule:
    """Training faces: two of P around axis p, two of Q around axis q; any face is known."""
    p, q = space["p"], space["q"]
    references = np.stack([towards(p, q, 0.05), towards(p, space["elsewhere"], 0.05), q, towards(q, p, 0.05)])
    return UnknownRule(references, threshold=2.0, labels=np.array(["p", "p", "q", "q"]))


def decide(corrections: Corrections, rule: UnknownRule, faces: list[np.ndarray], labels: list[str]):
    return corrections.apply(np.stack(faces), labels, np.zeros(len(faces), bool), rule, NOBODY)


def test_the_corrected_face_takes_its_verdict_and_faces_nearer_training_faces_do_not(
    space: dict[str, np.ndarray], rule: UnknownRule
) -> None:
    p, stranger = space["p"], space["stranger"]
    corrected = towards(p, stranger, 0.45)  # the classifier says P; the user says Q
    corrections = Corrections(corrected[None], np.array(["q"]), np.array(["is"]))
    near_it = towards(corrected, stranger, 0.1)
    near_p = towards(p, stranger, 0.1)
    answers = decide(corrections, rule, [corrected, near_it, near_p], ["p", "p", "p"])
    assert answers == [
        Corrected("q", Correction("is", "q")),
        Corrected("q", Correction("is", "q")),
        Corrected("p", None),
    ]


def test_not_p_rules_p_out_near_it_and_only_there(space: dict[str, np.ndarray], rule: UnknownRule) -> None:
    p, stranger = space["p"], space["stranger"]
    named_p = towards(p, stranger, 0.6)  # a stranger the classifier names P
    corrections = Corrections(named_p[None], np.array(["p"]), np.array(["is_not"]))
    same_stranger = towards(named_p, stranger, 0.2)
    genuine_p = towards(p, stranger, 0.2)
    q_face = space["q"]
    answers = decide(corrections, rule, [named_p, same_stranger, genuine_p, q_face], ["p", "p", "p", "q"])
    assert answers == [
        Corrected(NOBODY, Correction("is_not", "p")),
        Corrected(NOBODY, Correction("is_not", "p")),
        Corrected("p", None),
        Corrected("q", None),  # "not P" says nothing about Q
    ]


def test_a_face_the_unknown_rule_calls_nobody_stays_nobody(
    space: dict[str, np.ndarray], rule: UnknownRule
) -> None:
    corrections = Corrections(space["stranger"][None], np.array(["q"]), np.array(["is"]))
    answers = corrections.apply(space["stranger"][None], ["p"], np.ones(1, bool), rule, NOBODY)
    assert answers == [Corrected(NOBODY, None)]


def test_corrections_round_trip_and_refuse_bad_input(tmp_path: Path, space: dict[str, np.ndarray]) -> None:
    corrections = Corrections(
        np.stack([space["p"], space["q"]]), np.array(["p", "q"]), np.array(["is", "is_not"])
    )
    corrections.save(tmp_path)
    loaded = Corrections.load(tmp_path)
    assert np.array_equal(loaded.features, corrections.features) and list(loaded.verdicts) == ["is", "is_not"]
    with pytest.raises(ValueError, match="verdicts"):
        Corrections(space["p"][None], np.array(["p"]), np.array(["maybe"]))
    with pytest.raises(ValueError, match="one person"):
        Corrections(space["p"][None], np.array(["p", "q"]), np.array(["is"]))
    unlabelled = UnknownRule(space["p"][None], threshold=2.0)
    with pytest.raises(ValueError, match="class ids"):
        corrections.apply(space["p"][None], ["p"], np.zeros(1, bool), unlabelled, NOBODY)
