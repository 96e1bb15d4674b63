"""Scores on labelled photos, end to end through the served pipeline.

A photo's answer is the label of its largest face, as the service returns it
(``unknown`` included); a photo whose face is not found counts as wrong. Training's
report and the batch CLI's score on labelled folders both use this rule, so it lives
on the serving side, which training builds on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from app.labelled.folders import Photo
from app.model.recognizer import UNKNOWN, FaceResult, Recognizer
from app.pipeline.errors import ImageError

NO_FACE = "(no face)"


@dataclass(frozen=True)
class PhotoAnswer:
    photo: Photo
    #: Label of the largest face, or NO_FACE.
    label: str
    #: Labels of every face found, left to right.
    all_labels: tuple[str, ...]

    @classmethod
    def from_faces(cls, photo: Photo, faces: list[FaceResult]) -> PhotoAnswer:
        """The photo's answer is its largest face's label: bystanders are usually smaller."""
        main = max(faces, key=lambda f: f.box.area).label if faces else NO_FACE
        return cls(photo, main, tuple(f.label for f in faces))


def answer_photos(recognizer: Recognizer, photos: list[Photo], desc: str = "evaluate") -> list[PhotoAnswer]:
    answers = []
    for photo in tqdm(photos, desc=desc, unit="photo", disable=None):
        try:
            faces = recognizer.recognize_bytes(photo.path.read_bytes()).faces
        except ImageError:
            faces = []  # an unreadable photo gets no answer, which counts as wrong
        answers.append(PhotoAnswer.from_faces(photo, faces))
    return answers


def end_to_end_metrics(answers: list[PhotoAnswer], classes: list[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix over every photo.

    ``unknown`` and ``(no face)`` are wrong for a known person; they get their own
    columns in the confusion matrix so the reader sees why. ``person_found`` is the
    share of photos where the labelled person is among the faces' labels, which
    forgives a photo whose largest face is somebody else.
    """
    # Imported here: scikit-learn is slow to import, and a training command imports it
    # in a thread while it reads and detects photos (training.cli); importing this module
    # must not pull it in.
    from sklearn.metrics import accuracy_score, classification_report, confusion_matrix

    truth = [a.photo.label for a in answers]
    predicted = [a.label for a in answers]
    columns = [*classes, UNKNOWN, NO_FACE]
    report = classification_report(truth, predicted, labels=classes, output_dict=True, zero_division=0)
    return {
        "test_photos": len(answers),
        "accuracy": float(accuracy_score(truth, predicted)),
        "person_found": sum(a.photo.label in a.all_labels for a in answers) / max(1, len(answers)),
        "faces_found": sum(p != NO_FACE for p in predicted),
        "errors": sorted(
            f"{a.photo.label}/{a.photo.path.name} -> {a.label}" for a in answers if a.label != a.photo.label
        ),
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
