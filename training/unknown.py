"""Calibrate the "unknown" threshold on the training split, by leaving one person out.

Each training person in turn plays the stranger: their faces' distances to the
other people's faces are stranger distances, and the other people's faces'
distances to their nearest *other* face are known distances. The threshold sits
halfway between the known distances' 99th percentile and the stranger distances'
5th percentile: an equal margin on both sides of the gap, which held up better
on unseen photos than a percentile of either side alone (known-face distances
measured inside the training set run a little smaller than on new photos).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from app.unknown import l2_normalise, nearest_distance

KNOWN_PERCENTILE = 99.0
STRANGER_PERCENTILE = 5.0
OPEN_SET_PNG = "open_set.png"


@dataclass(frozen=True)
class Calibration:
    threshold: float
    known: np.ndarray
    strangers: np.ndarray

    def summary(self) -> dict[str, float]:
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
    """Known faces accepted against strangers rejected, as the threshold moves."""
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
