"""The human side of an artifact: ``report.md`` and its plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never open a window
import matplotlib.pyplot as plt
import numpy as np

from app.artifact_files import CONFUSION_PNG, CURVES_PNG, OPEN_SET_PNG
from app.artifacts import Manifest
from app.backends import describe_model

#: How each evaluation method is named in the report and plots.
METHOD_TITLES = {
    "held_out": "Held-out test photos, end to end",
    "leave_one_photo_out": "Leave-one-photo-out on the training photos (not a held-out figure), end to end",
}


def plot_confusion(metrics: dict[str, Any], method: str, path: Path) -> None:
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
    ax.set_title(f"{METHOD_TITLES[method]}\naccuracy {metrics['accuracy']:.1%}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(manifest: Manifest, path: Path) -> None:
    data = manifest.dataset
    classifier = manifest.classifier
    lines = [
        f"# Model {manifest.backend}/{manifest.version}",
        "",
        f"Created {manifest.created:%Y-%m-%d %H:%M} UTC from `{data['root']}` "
        f"(fingerprint `{data['fingerprint'][:16]}`).",
        "",
        f"- Detector: `{manifest.detector.name}` {manifest.detector.params}",
        f"- Features: `{manifest.features.name}` {manifest.features.params}",
        f"- Model: {describe_model(manifest)}",
        f"- Classifier: {classifier.get('winner')} {classifier.get('params')}: "
        f"{classifier.get('choice', '')}",
        f"- Photos with a usable face: {data['photos']} ({data['train_photos']} train, "
        f"{data['test_photos']} test); skipped: {data['skipped_counts'] or 'none'}",
        f"- People left out: {data['excluded_classes']}" if data.get("excluded_classes") else "",
        "",
        *_evaluation_lines(manifest),
        "## Model choice",
        "",
        classifier.get("search", ""),
        "",
    ]
    if classifier.get("candidates"):
        # Cross-validated for svm, on a validation split for cnn: the column says which.
        key = (
            "cv_accuracy"
            if "cv_accuracy" in next(iter(classifier["candidates"].values()))
            else "validation_accuracy"
        )
        heading = key.replace("_", " ").replace("cv", "cross-validated")
        lines += [f"| candidate | {heading} | best parameters |", "|---|---|---|"]
        for name, row in classifier["candidates"].items():
            lines.append(f"| {name} | {row[key]:.1%} | `{row['best_params']}` |")
    lines += _unknown_lines(manifest.metrics["unknown_threshold"], (path.parent / OPEN_SET_PNG).is_file())
    if (path.parent / CURVES_PNG).is_file():
        lines += ["", "## Training curves", "", f"![training curves]({CURVES_PNG})"]
    if data["skipped"]:
        lines += ["", "## Skipped files", "", *(f"- `{s}`" for s in data["skipped"])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _evaluation_lines(manifest: Manifest) -> list[str]:
    evaluation = manifest.metrics["evaluation"]
    method = evaluation["method"]
    metrics = manifest.metrics.get("test" if method == "held_out" else method)
    if metrics is None:
        why = evaluation["why"]
        if method == "leave_one_photo_out":
            why = "every person has a single photo, and leaving it out removes them from the model"
        return ["## Evaluation", "", f"No accuracy figure: {why}.", ""]
    lines = [
        f"## {METHOD_TITLES[method]}",
        "",
        f"{evaluation['why']}.",
        "",
        f"**Accuracy: {metrics['accuracy']:.1%}** on {metrics['test_photos']} photos. The labelled person "
        f"is among the faces found in {metrics['person_found']:.1%} of the photos.",
    ]
    if metrics.get("unscored_people"):
        lines.append(
            f"Not scored (one photo, which leaving out removes): {', '.join(metrics['unscored_people'])}."
        )
    lines += ["", "| class | precision | recall | F1 | photos |", "|---|---|---|---|---|"]
    for name, row in metrics["per_class"].items():
        lines.append(
            f"| {name} | {row['precision']:.2f} | {row['recall']:.2f} | {row['f1-score']:.2f} "
            f"| {int(row['support'])} |"
        )
    lines += ["", f"![confusion matrix]({CONFUSION_PNG})", ""]
    if metrics["errors"]:
        lines += ["Wrong answers (true/photo -> answer):", "", *(f"- `{e}`" for e in metrics["errors"]), ""]
    return lines


def _unknown_lines(threshold: dict[str, Any], plotted: bool) -> list[str]:
    lines = ["", "## Unknown faces", ""]
    if threshold["source"] == "none":
        return [*lines, f"No unknown rule: {threshold['rule']}."]
    lines.append(
        f"A face is `unknown` when its cosine distance to the nearest training face is above "
        f"**{threshold['threshold']:.3f}** ({threshold['source']}: {threshold['rule']})."
    )
    if threshold["source"] == "calibrated":
        lines += [
            f"On that calibration, {threshold['calibration_known_accepted']:.1%} of known faces are "
            f"accepted and {threshold['calibration_strangers_rejected']:.1%} of strangers rejected.",
        ]
        if plotted:
            lines += ["", f"![known faces accepted against strangers rejected]({OPEN_SET_PNG})"]
    else:
        lines.append(f"Provenance: {threshold['provenance']}")
    return lines
