"""The human side of an artifact: ``report.md`` and its plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never open a window
import matplotlib.pyplot as plt
import numpy as np

from app.artifacts import Manifest
from training.unknown import OPEN_SET_PNG

CONFUSION_PNG = "confusion_matrix.png"
CURVES_PNG = "training_curves.png"  # written by training/cnn.py


def plot_confusion(metrics: dict[str, Any], path: Path) -> None:
    cm = metrics["confusion_matrix"]
    matrix = np.array(cm["matrix"])
    fig, ax = plt.subplots(figsize=(1.2 * len(cm["columns"]) + 2, 0.9 * len(cm["rows"]) + 2))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(cm["columns"])), cm["columns"], rotation=35, ha="right")
    ax.set_yticks(range(len(cm["rows"])), cm["rows"])
    for (i, j), count in np.ndenumerate(matrix):
        colour = "white" if count > matrix.max() / 2 else "black"
        ax.text(j, i, str(count), ha="center", va="center", color=colour)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"Test photos, end to end (accuracy {metrics['accuracy']:.1%})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(manifest: Manifest, path: Path) -> None:
    metrics = manifest.metrics["test"]
    data = manifest.dataset
    lines = [
        f"# Model {manifest.backend}/{manifest.version}",
        "",
        f"Created {manifest.created:%Y-%m-%d %H:%M} UTC from `{data['root']}` "
        f"(fingerprint `{data['fingerprint'][:16]}`).",
        "",
        f"- Detector: `{manifest.detector.name}` {manifest.detector.params}",
        f"- Features: `{manifest.features.name}` {manifest.features.params}",
        f"- Classifier: {manifest.classifier.get('winner')} {manifest.classifier.get('params')}",
        f"- Photos: {data['photos']} ({data['train_photos']} train, {data['test_photos']} test, "
        f"split stratified with seed {data['split_seed']}); skipped files: {len(data['skipped'])}",
        f"- Training photos dropped: {data['train_dropped']}",
        f"- People left out: {data['excluded_classes']}" if data.get("excluded_classes") else "",
        "",
        "## Test split, end to end",
        "",
        f"**Accuracy: {metrics['accuracy']:.1%}** on {metrics['test_photos']} held-out photos "
        f"(a photo whose face is not found counts as wrong; faces found in "
        f"{metrics['faces_found']}). The labelled person is among the faces found in "
        f"{metrics['person_found']:.1%} of the photos.",
        "",
        "| class | precision | recall | F1 | photos |",
        "|---|---|---|---|---|",
    ]
    for name, row in metrics["per_class"].items():
        lines.append(
            f"| {name} | {row['precision']:.2f} | {row['recall']:.2f} | {row['f1-score']:.2f} "
            f"| {int(row['support'])} |"
        )
    lines += [
        "",
        f"![confusion matrix]({CONFUSION_PNG})",
        "",
        "## Model search",
        "",
        manifest.classifier.get("search", "Cross-validation on the training split."),
        "",
    ]
    lines += ["| candidate | accuracy | best parameters |", "|---|---|---|"]
    for name, row in manifest.classifier.get("candidates", {}).items():
        lines.append(f"| {name} | {row['best_cv_accuracy']:.1%} | `{row['best_params']}` |")
    if metrics["errors"]:
        lines += ["", "Wrong answers (true/photo -> answer):", ""] + [f"- `{e}`" for e in metrics["errors"]]
    calibration = manifest.metrics.get("unknown_calibration")
    if calibration:
        lines += [
            "",
            "## Unknown faces",
            "",
            f"A face is `unknown` when its cosine distance to the nearest training face is above "
            f"**{calibration['threshold']:.3f}** ({calibration['rule']}). On that calibration, "
            f"{calibration['calibration_known_accepted']:.1%} of known faces are accepted and "
            f"{calibration['calibration_strangers_rejected']:.1%} of strangers rejected.",
            "",
            f"![known faces accepted against strangers rejected]({OPEN_SET_PNG})",
        ]
    if (path.parent / CURVES_PNG).is_file():
        lines += ["", "## Training curves", "", f"![training curves]({CURVES_PNG})"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
