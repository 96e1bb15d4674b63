"""Detect and crop the labelled face of each photo, with the serving pipeline's own stages.

A photo's label belongs to its largest face: web photos of a person often show
bystanders, who are smaller. Photos that cannot be decoded or show no face are
dropped with a reason, and counted against end-to-end accuracy at evaluation.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from app.pipeline.decode import decode_photo
from app.pipeline.detect import Detection, FaceDetector
from app.pipeline.errors import ImageError
from app.pipeline.features import FeatureExtractor
from app.unknown import l2_normalise
from training.dataset import Photo, Skipped


@dataclass(frozen=True)
class FaceSample:
    photo: Photo
    face: Detection
    #: All faces found in the photo; the others are bystanders.
    others: tuple[Detection, ...]
    crop: np.ndarray
    other_crops: tuple[np.ndarray, ...]


def extract_faces(
    photos: list[Photo], detector: FaceDetector, extractor: FeatureExtractor, desc: str = "detect"
) -> tuple[list[FaceSample | None], list[Skipped]]:
    """One entry per photo (None where it yielded no face), plus why each dropped photo was dropped."""
    samples: list[FaceSample | None] = []
    dropped: list[Skipped] = []
    for photo in tqdm(photos, desc=desc, unit="photo", disable=None):
        try:
            rgb = decode_photo(photo.path.read_bytes(), min_side=detector.max_side).rgb  # as served
        except ImageError as exc:
            dropped.append(Skipped(photo.path, f"unreadable: {exc}"))
            samples.append(None)
            continue
        faces = detector.detect(rgb)
        if not faces:
            dropped.append(Skipped(photo.path, "no face found"))
            samples.append(None)
            continue
        main = max(faces, key=lambda f: f.box.area)
        others = tuple(f for f in faces if f is not main)
        samples.append(
            FaceSample(
                photo, main, others, extractor.crop(rgb, main), tuple(extractor.crop(rgb, f) for f in others)
            )
        )
    return samples, dropped


def main_face_features(samples: list[FaceSample], extractor: FeatureExtractor) -> np.ndarray:
    """One feature row per photo: the face the photo's label belongs to.

    With face embeddings, a photo with several faces contributes the face most
    like the person's single-face photos, since the largest face is sometimes a
    bystander; otherwise, and for hand-made features, the largest face.
    """
    rows = [extractor.extract([s.crop, *s.other_crops]) for s in samples]
    if not extractor.embedding:
        return np.stack([r[0] for r in rows])
    labels = np.array([s.photo.label for s in samples])
    single = np.array([len(r) == 1 for r in rows])
    centroids = {
        label: l2_normalise(
            np.stack(
                [r[0] for r, one, lab in zip(rows, single, labels, strict=True) if one and lab == label]
            ).mean(axis=0, keepdims=True)
        )[0]
        for label in np.unique(labels[single])
    }
    chosen = []
    for row, label in zip(rows, labels, strict=True):
        if len(row) == 1 or label not in centroids:
            chosen.append(row[0])
        else:
            chosen.append(row[int(np.argmax(l2_normalise(row) @ centroids[label]))])
    return np.stack(chosen)


def summarise_drops(dropped: list[Skipped]) -> dict[str, int]:
    """Counts by reason, with unreadable-file details folded into one bucket."""
    return dict(Counter(d.reason.split(":")[0] for d in dropped))
