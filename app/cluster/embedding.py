"""What faces are grouped on: the served model's embedding joined with the other one this project ships.

FaceNet and dlib's ResNet were trained on different faces and go wrong on different pairs: one
person's two photos that one of them puts far apart, the other often puts close. Grouping on
both splits fewer people over several groups at the same precision (docs/clustering.md). So a
face the model cannot name gets a second embedding, the companion's, and is grouped on the
two joined.

The two lie on different scales (one person's photos lie about seven times closer in dlib's
than in FaceNet's), so the companion's distances are put on the served embedding's scale first:
multiplied by ``scale``, the ratio of the two embeddings' same-person distances, both measured
the same way on the same photos (``app.model.same_person``). The joined vector is the two unit
vectors end to end, the companion's weighted by the square root of ``scale``; the cosine
distance between two joined vectors is then ``(d + scale x d') / (1 + scale)`` for their
distances ``d`` (served) and ``d'`` (companion): the mean of the two distances on the served
scale, times ``2 / (1 + scale)``. Being a cosine distance between unit vectors, the grouping's
means and centres work on it unchanged; its same-person distance is the served model's
calibrated one times the same factor.

A served model whose embedding has no measured same-person distance (or no companion) is
grouped on its own embedding, as before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from app.artifact.manifest import Manifest, StageSpec
from app.model.same_person import same_person_distance
from app.model.unknown import l2_normalise
from app.pipeline.features import FeatureExtractor, create_extractor

#: The second embedding for each served one: the other of the two this project ships.
COMPANIONS = {
    "facenet": StageSpec(name="dlib", params={"margin": 0.2}),
    "dlib": StageSpec(name="facenet", params={"margin": 0.2, "crop": "arcface"}),
}


@dataclass(frozen=True)
class Joint:
    """The companion embedding, and the factor that puts its distances on the served embedding's scale."""

    companion: StageSpec
    scale: float

    def load(self) -> FeatureExtractor:
        return create_extractor(self.companion.name, self.companion.params)

    def join(self, served: np.ndarray, companion: np.ndarray) -> np.ndarray:
        """Unit rows whose cosine distances are ``(d + scale x d') / (1 + scale)`` (module docstring)."""
        weight = math.sqrt(self.scale)
        rows = np.hstack(
            [l2_normalise(served.astype(np.float64)), weight * l2_normalise(companion.astype(np.float64))]
        )
        return (rows / math.sqrt(1 + self.scale)).astype(np.float32)

    def distance(self, served: float) -> float:
        """A served-scale distance on the joined vectors' scale: ``served x 2 / (1 + scale)``."""
        return served * 2 / (1 + self.scale)


def joint_for(manifest: Manifest) -> Joint | None:
    """The served model's companion and its scale; None when either embedding's distance is unmeasured."""
    served = manifest.features
    companion = COMPANIONS.get(served.name)
    if companion is None:
        return None
    mine = same_person_distance(served.name, served.params)
    theirs = same_person_distance(companion.name, companion.params)
    if mine is None or theirs is None:
        return None
    return Joint(companion, mine / theirs)
