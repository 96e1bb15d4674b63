"""Scores on held-out photos, end to end through the served pipeline.

A photo's answer is the label of its largest face, as the service returns it
(``unknown`` included); a photo whose face is not found counts as wrong. Training
scores from the faces and features the embedding cache holds for each photo: the
same decode, detect, crop and embed the service runs, done once, then the
artifact's own classifier and unknown rule.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, classification_report, confusion_matrix
from tqdm import tqdm

from app.pipeline.errors import ImageError
from app.recognizer import UNKNOWN, FaceResult, Recognizer
from training.cache import PhotoFaces
from training.dataset import Photo

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
            faces = recognizer.recognize_photo(recognizer.decode(photo.path.read_bytes())).faces
        except ImageError:
            faces = []  # an unreadable photo gets no answer, which counts as wrong
        answers.append(PhotoAnswer.from_faces(photo, faces))
    return answers


def answer_from_faces(recognizer: Recognizer, photo: Photo, entry: PhotoFaces) -> PhotoAnswer:
    """The photo's answer from its cached faces, through ``recognizer``'s classifier and unknown rule."""
    return PhotoAnswer.from_faces(photo, recognizer.classify(list(entry.faces), entry.features))


def leave_one_photo_out(
    photos: list[Photo],
    faces: dict[Photo, PhotoFaces],
    features: np.ndarray,
    refit: Callable[[np.ndarray, np.ndarray], Recognizer],
) -> tuple[list[PhotoAnswer], list[str]]:
    """Score each photo with a model refitted on all the others (``features``: one row per photo).

    A person's only photo cannot be scored this way (without it the person is not
    in the model); such people are returned by name, and their photo still trains
    every other fold.
    """
    labels = np.array([p.label for p in photos])
    counts = Counter(labels.tolist())
    answers = []
    for i, photo in enumerate(tqdm(photos, desc="leave one photo out", unit="photo", disable=None)):
        if counts[photo.label] < 2:
            continue
        keep = np.arange(len(photos)) != i
        answers.append(answer_from_faces(refit(features[keep], labels[keep]), photo, faces[photo]))
    return answers, sorted(label for label, n in counts.items() if n < 2)


def end_to_end_metrics(answers: list[PhotoAnswer], classes: list[str]) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1 and the confusion matrix over every photo.

    ``unknown`` and ``(no face)`` are wrong for a known person; they get their own
    columns in the confusion matrix so the reader sees why. ``person_found`` is the
    share of photos where the labelled person is among the faces' labels, which
    forgives a photo whose largest face is somebody else.
    """
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
