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

from app.pipeline.decode import decode_image
from app.pipeline.detect import Detection, FaceDetector
from app.pipeline.errors import ImageError
from app.pipeline.features import FeatureExtractor
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
    for photo in tqdm(photos, desc=desc, unit="photo"):
        try:
            rgb = decode_image(photo.path.read_bytes())
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


def summarise_drops(dropped: list[Skipped]) -> dict[str, int]:
    """Counts by reason, with unreadable-file details folded into one bucket."""
    return dict(Counter(d.reason.split(":")[0] for d in dropped))
