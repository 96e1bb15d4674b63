"""One uploaded photo: decode it as the service does, find its faces, embed them, and say what happened.

Detection and embedding go through the training embedding cache, so the build that
follows reads every enrolled photo's faces from it instead of detecting again: a
change costs the new photos' detection plus a fit, not a pass over every photo.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from app.pipeline.decode import decode_photo
from app.pipeline.detect import Box, FaceDetector
from app.pipeline.errors import ImageError
from app.pipeline.features import FeatureExtractor, create_extractor
from enrolment.records import FaceRef, NewPhoto, StoreError
from training.cache import EmbeddingCache
from training.faces import detect_and_extract, faces_in
from training.run_config import new_detector

Outcome = Literal["face_used", "several_faces", "no_face", "unreadable", "too_large", "duplicate", "skipped"]

#: The face a correction's box names is the found face whose box overlaps it by at least this much
#: (intersection over union). The service and the trainer run the same detector on the same
#: pixels, so the boxes are the same; they differ when the service ran another search
#: (``FACE_DETECTOR``, ``?thorough=true``), and then no found face may match.
SAME_FACE_IOU = 0.5


@dataclass(frozen=True)
class Checked:
    """What intake made of one file; ``photo`` is set when it is to be stored."""

    filename: str
    outcome: Outcome
    faces: int = 0
    detail: str | None = None
    photo: NewPhoto | None = None


class Intake:
    """The detector, the embedder and the cache, shared by the intake threads.

    The ONNX Runtime sessions behind both stages are safe to share between threads, and
    the Haar detector keeps a pool of ``threads`` copies (cascades are not thread-safe).
    """

    def __init__(
        self, detector: str, features: str, cache_dir: Path, threads: int, max_pixels: int, max_bytes: int
    ) -> None:
        self.detector: FaceDetector = new_detector(detector)
        self.extractor: FeatureExtractor = create_extractor(features)
        self.cache = EmbeddingCache.for_stages(cache_dir, self.detector, self.extractor)
        self.max_pixels = max_pixels
        self.max_bytes = max_bytes

    def check(self, filename: str, data: bytes) -> Checked:
        if len(data) > self.max_bytes:
            return Checked(filename, "too_large", detail=f"over the {self.max_bytes} byte limit per photo")
        sha256 = hashlib.sha256(data).hexdigest()
        entry = self.cache.get(sha256)
        if entry is None:
            try:
                entry = detect_and_extract(data, self.detector, self.extractor, self.max_pixels)
            except ImageError as exc:
                return Checked(filename, "unreadable", detail=str(exc))
        faces = len(entry.faces)
        if faces == 0:
            return Checked(filename, "no_face")
        self.cache.put(sha256, entry)
        outcome: Outcome = "face_used" if faces == 1 else "several_faces"
        detail = (
            None
            if faces == 1
            else "the face most like this person's one-face photos is used (the largest if none)"
        )
        return Checked(filename, outcome, faces, detail, NewPhoto(data, sha256, filename, faces))

    def locate(
        self, filename: str, data: bytes, box: Box, answered: str | None, version: str | None
    ) -> NewPhoto:
        """The photo of a correction, with the face ``box`` (the photo's pixels, as a classify
        answer gave it) names; a 422 problem when the trainer's detector finds no face there."""
        if len(data) > self.max_bytes:
            raise StoreError(413, f"over the {self.max_bytes} byte limit per photo")
        photo = decode_photo(data, self.max_pixels, min_side=self.detector.max_side)
        sha256 = hashlib.sha256(data).hexdigest()
        entry = self.cache.get(sha256) or faces_in(photo.rgb, self.detector, self.extractor)
        overlaps = [face.box.scaled(photo.scale).iou(box) for face in entry.faces]
        if not overlaps or max(overlaps) < SAME_FACE_IOU:
            raise StoreError(
                422,
                f"no face at {box.as_dict()} in this photo: the trainer finds {len(overlaps)} face(s), "
                f"none overlapping that box by {SAME_FACE_IOU:.0%} (a face found only by ?thorough=true "
                "or another FACE_DETECTOR cannot be corrected)",
            )
        self.cache.put(sha256, entry)
        face = entry.faces[overlaps.index(max(overlaps))]
        return NewPhoto(data, sha256, filename, len(entry.faces), FaceRef(box, face.box, answered, version))
