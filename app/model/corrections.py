"""Answers users corrected: "this face is P" and "this face is not P", kept beside a version.

A correction is a face's embedding and a verdict about one person. The version's classifier
is trained on the "is P" faces as on any photo of P, but a model fitted on many photos may
still answer a single new face as before; and "not P" is no class a classifier can learn.
So corrections also act as nearest neighbours, each over its own neighbourhood:

- "is P": where the corrected face is nearer to the face being answered than every
  training face, the answer is P (unless the unknown rule says the face is nobody's).
- "is not P": where the answer is P and the corrected face is nearer than every training
  face of P, P is ruled out and the answer is ``unknown``: "not P" says who it is not,
  never who it is.

The corrected face itself is at distance zero from its correction, so it always takes its
verdict, and so do faces closer to it than to what the model knew: other photos of the
same person, mostly. The probabilities stay the classifier's; the face's ``correction``
says which verdict decided its label.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from app.artifact.file_names import CORRECTIONS
from app.model.unknown import UnknownRule, l2_normalise

Verdict = Literal["is", "is_not"]
VERDICTS: tuple[Verdict, ...] = ("is", "is_not")
#: Distances this close are ties: the same face, stored once as a training face and once as a
#: correction, comes out a rounding error apart (float32 products of vectors normalised apart).
TIE = 1e-5


@dataclass(frozen=True)
class Correction:
    """The verdict that decided a face's label: ``person`` is, or is not, who it shows."""

    verdict: Verdict
    person: str


@dataclass(frozen=True)
class Corrected:
    """A face's label after the corrections, and the verdict that set it (None: none applied)."""

    label: str
    correction: Correction | None


class Corrections:
    """Corrected faces (unit embeddings), the person each verdict is about, and the verdicts."""

    def __init__(self, features: np.ndarray, people: np.ndarray, verdicts: np.ndarray) -> None:
        self.features = l2_normalise(np.asarray(features, np.float32))
        self.people = np.asarray(people, dtype=str)
        self.verdicts = np.asarray(verdicts, dtype=str)
        if not (len(self.features) == len(self.people) == len(self.verdicts)):
            raise ValueError("corrections need one person and one verdict per face")
        if not set(self.verdicts) <= set(VERDICTS):
            raise ValueError(f"verdicts must be among {VERDICTS}")
        self._is = self.verdicts == "is"

    def __len__(self) -> int:
        return len(self.features)

    @classmethod
    def load(cls, version_dir: Path) -> Corrections:
        with np.load(version_dir / CORRECTIONS, allow_pickle=False) as arrays:
            return cls(arrays["features"], arrays["people"], arrays["verdicts"])

    def save(self, version_dir: Path) -> None:
        np.savez(
            version_dir / CORRECTIONS,
            allow_pickle=False,
            features=self.features,
            people=self.people,
            verdicts=self.verdicts,
        )

    def apply(
        self, features: np.ndarray, labels: list[str], unknown: np.ndarray, rule: UnknownRule, nobody: str
    ) -> list[Corrected]:
        """Each face's label once the corrections near it have spoken.

        ``labels`` are the classifier's best classes, ``unknown`` the unknown rule's verdicts
        and ``nobody`` the label of a face that is nobody known. ``rule`` holds the training
        faces (with their class ids) the corrected faces compete with.
        """
        if rule.labels is None:
            raise ValueError("corrections need the training faces' class ids (reference labels)")
        to_training = rule.reference_distances(features)
        to_corrected = 1.0 - l2_normalise(features) @ self.features.T
        answers = []
        for row, best in enumerate(labels):
            if unknown[row]:
                answers.append(Corrected(nobody, None))
                continue
            decided = self._nearest_is(to_corrected[row], to_training[row].min())
            label = decided.person if decided else best
            if self._rules_out(label, to_corrected[row], to_training[row, rule.labels == label]):
                answers.append(Corrected(nobody, Correction("is_not", label)))
            else:
                answers.append(Corrected(label, decided))
        return answers

    def _nearest_is(self, to_corrected: np.ndarray, nearest_training: float) -> Correction | None:
        """The "is P" verdict whose face is nearest, if no training face is nearer.

        Ties go to the correction: an "is P" face is also one of P's training faces.
        """
        positive = np.flatnonzero(self._is)
        if not positive.size:
            return None
        best = positive[int(np.argmin(to_corrected[positive]))]
        return (
            Correction("is", str(self.people[best])) if to_corrected[best] <= nearest_training + TIE else None
        )

    def _rules_out(self, label: str, to_corrected: np.ndarray, to_own_training: np.ndarray) -> bool:
        """Whether a "not ``label``" face is at least as near as every training face of ``label``."""
        against = ~self._is & (self.people == label)
        if not against.any():
            return False
        nearest_own = to_own_training.min() if to_own_training.size else np.inf
        return bool(to_corrected[against].min() <= nearest_own + TIE)
