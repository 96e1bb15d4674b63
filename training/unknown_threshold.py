"""The "unknown" threshold: calibrated on the training split by leaving one person out, or a default.

Each training person in turn plays the stranger: their faces' distances to the
other people's faces are stranger distances, and the other people's faces'
distances to their nearest *other* face are known distances. The threshold sits
halfway between the known distances' 99th percentile and the stranger distances'
5th percentile: an equal margin on both sides of the gap, which held up better
on unseen photos than a percentile of either side alone (known-face distances
measured inside the training set run a little smaller than on new photos).

That needs several people with several photos each. With fewer, the threshold is
the embedding's measured same-person distance for k photos per person
(``app.model.same_person``, which says how it was measured). Fewer references leave
a known face farther from its nearest one, so the default loosens as k shrinks, and
fewer strangers are caught; the manifest says which threshold was used and where it
came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.model.same_person import default_thresholds
from app.model.unknown import l2_normalise, nearest_distance

KNOWN_PERCENTILE = 99.0
STRANGER_PERCENTILE = 5.0
#: Leave-one-person-out calibration needs this many people, each with this many training faces.
CALIBRATION_MIN_PEOPLE = 3
CALIBRATION_MIN_PHOTOS = 10


@dataclass(frozen=True)
class Calibration:
    threshold: float
    known: np.ndarray
    strangers: np.ndarray

    def summary(self) -> dict[str, float | str]:
        return {
            "threshold": self.threshold,
            "rule": f"midpoint of known p{KNOWN_PERCENTILE:g} and stranger p{STRANGER_PERCENTILE:g}, "
            "leave-one-person-out on the training split",
            "calibration_known_accepted": float((self.known <= self.threshold).mean()),
            "calibration_strangers_rejected": float((self.strangers > self.threshold).mean()),
        }


def calibrate(features: np.ndarray, labels: np.ndarray) -> Calibration:
    unit = l2_normalise(features)
    known, strangers = [], []
    for person in np.unique(labels):
        others = unit[labels != person]
        similarity = others @ others.T
        np.fill_diagonal(similarity, -np.inf)  # a face is not its own neighbour
        known.append(1.0 - similarity.max(axis=1))
        strangers.append(nearest_distance(unit[labels == person], others))
    known_all, strangers_all = np.concatenate(known), np.concatenate(strangers)
    threshold = (
        np.percentile(known_all, KNOWN_PERCENTILE) + np.percentile(strangers_all, STRANGER_PERCENTILE)
    ) / 2
    return Calibration(float(threshold), known_all, strangers_all)


def plot_open_set(calibration: Calibration, path: Path) -> None:
    """Known faces accepted against strangers rejected, as the threshold moves.

    matplotlib is imported here, not with the module: a retrain that plots nothing (a default
    threshold, or an enrolment build) should not pay for its import.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only; never open a window
    import matplotlib.pyplot as plt

    thresholds = np.linspace(0.0, 1.0, 201)
    accepted = [(calibration.known <= t).mean() for t in thresholds]
    rejected = [(calibration.strangers > t).mean() for t in thresholds]
    fig, (curve, hist) = plt.subplots(1, 2, figsize=(11, 4))
    curve.plot(rejected, accepted, color="tab:blue")
    at = calibration.threshold
    curve.scatter(
        [(calibration.strangers > at).mean()],
        [(calibration.known <= at).mean()],
        color="tab:red",
        zorder=3,
        label=f"chosen threshold {at:.3f}",
    )
    curve.set_xlabel("strangers rejected as unknown")
    curve.set_ylabel("known faces accepted")
    curve.set_xlim(0, 1.02)
    curve.set_ylim(0, 1.02)
    curve.grid(alpha=0.3)
    curve.legend(loc="lower left")
    curve.set_title("Leave one person out, training split")
    bins = np.linspace(0, 1, 51)
    hist.hist(calibration.known, bins=bins, alpha=0.6, label="known: nearest other face")
    hist.hist(calibration.strangers, bins=bins, alpha=0.6, label="stranger: nearest face")
    hist.axvline(at, color="tab:red", linestyle="--")
    hist.set_xlabel("cosine distance")
    hist.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@dataclass(frozen=True)
class ThresholdChoice:
    """The threshold and, for the manifest, how it was chosen (``calibration`` when calibrated).

    ``class_thresholds`` is set when people's thresholds differ (defaults for different
    numbers of photos); ``threshold`` is then the loosest of them.
    """

    threshold: float | None
    summary: dict[str, Any]
    calibration: Calibration | None = None
    class_thresholds: dict[str, float] | None = None


def choose_threshold(
    features: np.ndarray, labels: np.ndarray, embedding: str, params: dict[str, Any]
) -> ThresholdChoice:
    """Calibrate when the people and photos allow it; else each person's default for their photos.

    Calibration needs every person to have enough photos. Otherwise each person gets the
    embedding's default for their own number of training photos: one person enrolled from
    four photos loosens the rule for their own faces only, not for everyone (before, the
    fewest photos of anyone set one threshold for all).
    """
    people, counts = np.unique(labels, return_counts=True)
    fewest = int(counts.min())
    if len(people) >= CALIBRATION_MIN_PEOPLE and fewest >= CALIBRATION_MIN_PHOTOS:
        calibration = calibrate(features, labels)
        return ThresholdChoice(
            calibration.threshold, {"source": "calibrated", **calibration.summary()}, calibration
        )
    why = (
        f"{len(people)} people with at least {fewest} training faces each; calibration needs "
        f"{CALIBRATION_MIN_PEOPLE} people with {CALIBRATION_MIN_PHOTOS} each"
    )
    default = default_thresholds(embedding, params)
    if default is None:
        return ThresholdChoice(
            None,
            {
                "source": "none",
                "rule": f"no unknown rule: {why}, and no default is measured for {embedding} {params}",
            },
        )
    table = default["by_photos_per_person"]
    row = {
        str(person): max(n for n in table if n <= int(count))
        for person, count in zip(people, counts, strict=True)
    }
    if len(set(row.values())) == 1:
        k = next(iter(row.values()))
        threshold = table[k]
        return ThresholdChoice(
            threshold,
            {
                "source": "default",
                "threshold": threshold,
                "rule": f"default for {embedding} with {k} photo(s) per person ({why})",
                "provenance": default["provenance"],
            },
        )
    class_thresholds = {person: float(table[k]) for person, k in row.items()}
    threshold = max(class_thresholds.values())
    by_k = ", ".join(
        f"{table[k]} for {k}+ photos ({_people(sum(v == k for v in row.values()))})"
        for k in sorted(set(row.values()))
    )
    return ThresholdChoice(
        threshold,
        {
            "source": "default",
            "threshold": threshold,
            "class_thresholds": class_thresholds,
            "rule": f"defaults for {embedding} by each person's own number of photos: {by_k} ({why})",
            "provenance": default["provenance"],
        },
        class_thresholds=class_thresholds,
    )


def _people(n: int) -> str:
    return f"{n} {'person' if n == 1 else 'people'}"
