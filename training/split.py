"""Which evaluation the photos allow: a held-out split, leave-one-photo-out, or none.

A held-out split is the honest figure, but only when every person keeps photos on
both sides of it; with a few photos per person, each photo is instead scored by a
model refitted without it (leave-one-photo-out on the training photos), which the
report labels as such. ``--test-size 0`` trains on everything and scores nothing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from math import ceil
from typing import Literal

from app.labelled.folders import Photo
from training.errors import TrainingInputError

#: Photos of every person a held-out split needs (at the default 0.2: 1 to test, 4 to train).
HELD_OUT_MIN_PHOTOS = 5

Method = Literal["held_out", "leave_one_photo_out", "none"]


@dataclass(frozen=True)
class EvaluationPlan:
    method: Method
    train: list[Photo]
    test: list[Photo]
    #: Why this method, for the manifest and report.
    why: str


def plan_evaluation(photos: list[Photo], test_size: float, seed: int) -> EvaluationPlan:
    """Stratified by person with a fixed seed: the same folder always gives the same test photos."""
    if test_size == 0:
        return EvaluationPlan("none", photos, [], "--test-size 0: trained on every photo, no held-out figure")
    counts = Counter(p.label for p in photos)
    person, fewest = min(counts.items(), key=lambda item: (item[1], item[0]))
    if fewest < HELD_OUT_MIN_PHOTOS:
        return EvaluationPlan(
            "leave_one_photo_out",
            photos,
            [],
            f"{person} has {fewest} usable photo(s), fewer than the {HELD_OUT_MIN_PHOTOS} a held-out split "
            "needs; each photo is scored by a model refitted without it",
        )
    if ceil(test_size * len(photos)) < len(counts):
        raise TrainingInputError(
            f"--test-size {test_size} holds out {ceil(test_size * len(photos))} of {len(photos)} photos, "
            f"fewer than the {len(counts)} people; raise it, or use 0 to train on everything"
        )
    from sklearn.model_selection import train_test_split  # not at import: see training.cli

    train, test = train_test_split(
        photos, test_size=test_size, random_state=seed, stratify=[p.label for p in photos]
    )
    return EvaluationPlan(
        "held_out",
        list(train),
        list(test),
        f"every person has at least {HELD_OUT_MIN_PHOTOS} usable photos: {len(test)} held out "
        f"(stratified, seed {seed}), never used for fitting, tuning or calibration",
    )
