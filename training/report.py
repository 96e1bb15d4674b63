"""The human side of an artifact: ``report.md`` and its plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from app.artifact.file_names import CONFUSION_PNG, CURVES_PNG, OPEN_SET_PNG
from app.artifact.manifest import Manifest
from app.backends import describe_model

#: How each evaluation method is named in the report and plots.
METHOD_TITLES = {
    "held_out": "Held-out test photos, end to end",
    "leave_one_photo_out": "Leave-one-photo-out on the training photos (not a held-out figure), end to end",
}


#: The confusion matrix's colours: counts shade from the first to the second (matplotlib's "Blues" ends).
LIGHT, DARK = np.array([247, 251, 255]), np.array([8, 48, 107])
CELL = 64


def plot_confusion(metrics: dict[str, Any], method: str, path: Path) -> None:
    """The confusion matrix as a PNG, drawn with Pillow.

    Drawn by hand rather than with matplotlib, whose import and figure cost a warm retrain
    a large share of its time (docs/benchmarks.md, "Retraining warm").
    """
    cm = metrics["confusion_matrix"]
    matrix = np.array(cm["matrix"], dtype=int).reshape(len(cm["rows"]), len(cm["columns"]))
    font = ImageFont.load_default(size=14)
    small = ImageFont.load_default(size=12)

    def width(text: str, face: ImageFont.FreeTypeFont | ImageFont.ImageFont = font) -> int:
        return int(ImageDraw.Draw(Image.new("L", (1, 1))).textlength(text, font=face))

    title = [METHOD_TITLES[method], f"accuracy {metrics['accuracy']:.1%}"]
    left = max(width(r) for r in cm["rows"]) + 40  # row names, and "true" turned on its side
    bottom = max(width(c) for c in cm["columns"]) + 32
    top, grid = 56, (CELL * matrix.shape[1], CELL * matrix.shape[0])
    size = (max(left + grid[0] + 16, max(width(t, small) for t in title) + 16), top + grid[1] + bottom)
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    for line, text in enumerate(title):
        draw.text((image.width // 2, 8 + 18 * line), text, fill="black", font=small, anchor="ma")
    peak = max(1, int(matrix.max()))
    for (i, j), count in np.ndenumerate(matrix):
        x, y = left + CELL * j, top + CELL * i
        colour = tuple(int(v) for v in LIGHT + (DARK - LIGHT) * (count / peak))
        draw.rectangle((x, y, x + CELL - 1, y + CELL - 1), fill=colour)
        ink = "white" if count > peak / 2 else "black"
        draw.text((x + CELL // 2, y + CELL // 2), str(count), fill=ink, font=font, anchor="mm")
    draw.rectangle((left - 1, top - 1, left + grid[0], top + grid[1]), outline="black")
    for i, name in enumerate(cm["rows"]):
        draw.text((left - 8, top + CELL * i + CELL // 2), name, fill="black", font=font, anchor="rm")
    for j, name in enumerate(cm["columns"]):
        label = Image.new("L", (width(name) + 4, 20), 255)
        ImageDraw.Draw(label).text((2, 10), name, fill=0, font=font, anchor="lm")
        turned = label.rotate(90, expand=True)  # reads bottom to top, ending at the column
        image.paste(turned.convert("RGB"), (left + CELL * j + CELL // 2 - 10, top + grid[1] + 6))
    draw.text((left + grid[0] // 2, image.height - 4), "predicted", fill="black", font=font, anchor="md")
    turned = Image.new("L", (width("true") + 4, 20), 255)
    ImageDraw.Draw(turned).text((2, 10), "true", fill=0, font=font, anchor="lm")
    image.paste(turned.rotate(90, expand=True).convert("RGB"), (2, top + grid[1] // 2 - 16))
    image.save(path, optimize=False)


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
    if classifier.get("serving"):
        lines += [f"Serving: {classifier['serving']}.", ""]
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
    if threshold.get("class_thresholds"):
        per_person = ", ".join(f"{c} {t:.3f}" for c, t in sorted(threshold["class_thresholds"].items()))
        lines.append(
            "A face is `unknown` when it is farther than each person's threshold from every training "
            f"face of that person: {per_person} ({threshold['source']}: {threshold['rule']})."
        )
    else:
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
