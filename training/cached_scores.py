"""Training's scores: from the faces the embedding cache holds, and leave-one-photo-out.

Training scores from the faces and features the embedding cache holds for each photo:
the same decode, detect, crop and embed the service runs, done once, then the
artifact's own classifier and unknown rule, under the answer rule of ``app.labelled.scores``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np
from tqdm import tqdm

from app.labelled.folders import Photo
from app.labelled.scores import PhotoAnswer
from app.model.recognizer import Recognizer
from training.cache import PhotoFaces


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
