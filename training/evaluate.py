"""Scores on the held-out test split, end to end: a photo with no face found counts as wrong."""

from __future__ import annotations

from typing import Any

from sklearn.metrics import accuracy_score, classification_report, confusion_matrix

from app.recognizer import UNKNOWN

NO_FACE = "(no face)"


def end_to_end_metrics(truth: list[str], predicted: list[str], classes: list[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix over every test photo.

    ``predicted`` may hold ``unknown`` and ``(no face)``, both wrong for a known person;
    they get their own columns in the confusion matrix so the reader sees why.
    """
    columns = [*classes, UNKNOWN, NO_FACE]
    report = classification_report(truth, predicted, labels=classes, output_dict=True, zero_division=0)
    return {
        "test_photos": len(truth),
        "accuracy": float(accuracy_score(truth, predicted)),
        "faces_found": sum(p != NO_FACE for p in predicted),
        "per_class": {
            c: {k: float(report[c][k]) for k in ("precision", "recall", "f1-score", "support")}
            for c in classes
        },
        "confusion_matrix": {
            "rows": classes,
            "columns": columns,
            "matrix": confusion_matrix(truth, predicted, labels=columns)[: len(classes)].tolist(),
        },
    }
