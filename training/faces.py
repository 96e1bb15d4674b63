"""Detect and embed the faces of each photo with the serving pipeline's own stages, through the cache.

A photo's label belongs to one of its faces: web photos of a person often show
bystanders. Photos that cannot be decoded or show no face are dropped with a
reason, and counted against end-to-end accuracy at evaluation.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from tqdm import tqdm

from app.labelled.folders import Photo, Skipped
from app.model.unknown import l2_normalise
from app.pipeline.decode import DEFAULT_MAX_PIXELS, decode_photo
from app.pipeline.detect import FaceDetector
from app.pipeline.errors import ImageError
from app.pipeline.features import FeatureExtractor
from training.cache import EmbeddingCache, PhotoFaces


def detect_and_extract(
    data: bytes, detector: FaceDetector, extractor: FeatureExtractor, max_pixels: int = DEFAULT_MAX_PIXELS
) -> PhotoFaces:
    """Every face in one photo's bytes and its feature row, decoded as the service decodes uploads."""
    return faces_in(decode_photo(data, max_pixels, min_side=detector.max_side).rgb, detector, extractor)


def faces_in(rgb: np.ndarray, detector: FaceDetector, extractor: FeatureExtractor) -> PhotoFaces:
    """Every face in decoded pixels and its feature row."""
    faces = tuple(detector.detect(rgb))
    return PhotoFaces(faces, extractor.extract([extractor.crop(rgb, face) for face in faces]))


def embed_photos(
    photos: list[Photo],
    detector: FaceDetector,
    extractor: FeatureExtractor,
    cache: EmbeddingCache | None = None,
    desc: str = "detect",
) -> tuple[dict[Photo, PhotoFaces], list[Skipped]]:
    """The faces of every photo that has one, plus why each other photo was dropped.

    Photos already in ``cache`` are not decoded at all; new results are added to it.
    A photo without a face is cached too (as zero faces); an unreadable one is not.
    """
    found: dict[Photo, PhotoFaces] = {}
    dropped: list[Skipped] = []
    for photo in tqdm(photos, desc=desc, unit="photo", disable=None):
        entry = cache.get(photo.sha256) if cache is not None else None
        if entry is None:
            try:
                entry = detect_and_extract(photo.path.read_bytes(), detector, extractor)
            except (ImageError, OSError) as exc:
                dropped.append(Skipped(photo.path, f"unreadable: {exc}"))
                continue
            if cache is not None:
                cache.put(photo.sha256, entry)
        if entry.faces:
            found[photo] = entry
        else:
            dropped.append(Skipped(photo.path, "no face found"))
    return found, dropped


def main_face_features(entries: list[tuple[str, PhotoFaces]], embedding: bool) -> np.ndarray:
    """One feature row per labelled photo: the face the photo's label belongs to.

    With face embeddings, a photo with several faces contributes the face most
    like the person's single-face photos, since the largest face is sometimes a
    bystander; otherwise, and for hand-made features, the largest face.
    """
    largest = [e.features[int(np.argmax([f.box.area for f in e.faces]))] for _, e in entries]
    if not embedding:
        return np.stack(largest)
    labels = np.array([label for label, _ in entries])
    single = np.array([len(e.faces) == 1 for _, e in entries])
    centroids = {
        label: l2_normalise(
            np.stack(
                [e.features[0] for (lab, e), one in zip(entries, single, strict=True) if one and lab == label]
            ).mean(axis=0, keepdims=True)
        )[0]
        for label in np.unique(labels[single])
    }
    chosen = []
    for (label, entry), row in zip(entries, largest, strict=True):
        if len(entry.faces) == 1 or label not in centroids:
            chosen.append(row)
        else:
            chosen.append(entry.features[int(np.argmax(l2_normalise(entry.features) @ centroids[label]))])
    return np.stack(chosen)


def summarise_drops(dropped: list[Skipped]) -> dict[str, int]:
    """Counts by reason, with unreadable-file details folded into one bucket."""
    return dict(Counter(d.reason.split(":")[0] for d in dropped))
