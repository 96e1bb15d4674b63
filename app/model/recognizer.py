"""The whole inference path for one photo: decode, detect, crop, features, classify, unknown.

Training evaluation, the batch CLI, the benchmarks and the HTTP service all call
this one class, so what is measured is what is served.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from app.artifact.file_names import CORRECTIONS, REFERENCE_LABELS
from app.artifact.manifest import ArtifactError, Manifest, StageSpec, load_manifest
from app.backends import Classifier, load_classifier
from app.model.corrections import Corrected, Correction, Corrections
from app.model.unknown import UnknownRule
from app.pipeline.decode import DEFAULT_MAX_PIXELS, DecodedPhoto, decode_photo
from app.pipeline.detect import Box, Detection, FaceDetector, create_detector
from app.pipeline.features import FeatureExtractor, create_extractor

UNKNOWN = "unknown"

Quality = Literal["good", "low"]

#: Faces fewer pixels high than this (in the analysed image) are ``quality="low"``: below it
#: fewer than half of the held-out faces, scaled down, get their name back, the rest mostly
#: "unknown" (docs/benchmarks.md, "Names by face height"; bench/detection.py --sections accuracy).
LOW_QUALITY_HEIGHT = 32

log = logging.getLogger("app.model")

#: Called with (stage name, seconds) after each stage; used for metrics and benchmarks.
StageObserver = Callable[[str, float], None]


@dataclass(frozen=True)
class FaceResult:
    box: Box
    label: str
    confidence: float
    probabilities: dict[str, float]
    #: "low" for a face too small for a reliable name (see LOW_QUALITY_HEIGHT), else "good".
    quality: Quality = "good"
    #: The user's correction that decided the label (app/model/corrections.py), if one did.
    correction: Correction | None = None


@dataclass(frozen=True)
class Recognition:
    width: int
    height: int
    faces: list[FaceResult]
    #: More faces were found than ``max_faces``; only the largest were classified.
    faces_truncated: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    #: The faces' feature rows (embeddings), in the order of ``faces``; None when there is no face.
    features: np.ndarray | None = None
    #: The detections behind ``faces``, in their order and in the pixels detection saw (for a
    #: caller that crops the faces again, for another embedding: ``python -m app cluster``).
    detections: tuple[Detection, ...] = ()


class Recognizer:
    def __init__(
        self,
        manifest: Manifest,
        detector: FaceDetector,
        extractor: FeatureExtractor,
        classifier: Classifier,
        unknown: UnknownRule | None = None,
        max_faces: int = 20,
        version_dir: Path | None = None,
        corrections: Corrections | None = None,
    ) -> None:
        self.manifest = manifest
        #: The artifact folder the model came from (class pictures live there); None for a
        #: model training holds in memory.
        self.version_dir = version_dir
        self.detector = detector
        self.extractor = extractor
        self.classifier = classifier
        self.unknown = unknown
        self.max_faces = max_faces
        self.classes = manifest.class_ids
        if corrections is not None and (unknown is None or unknown.labels is None):
            raise ArtifactError("corrections need the unknown rule's references and their class ids")
        self.corrections = corrections

    @classmethod
    def from_artifact(
        cls,
        version_dir: Path,
        *,
        detector: str | None = None,
        unknown_threshold: float | None = None,
        max_faces: int = 20,
        stages: tuple[FaceDetector, FeatureExtractor] | None = None,
    ) -> Recognizer:
        """Load a verified artifact and rebuild the exact stages it was trained with.

        ``detector`` overrides the manifest's detector (the features stay as trained);
        ``unknown_threshold`` overrides the calibrated threshold. ``stages`` offers a detector
        and an extractor already loaded (training's, which made the artifact): each is used
        when its name and parameters are the manifest's, and built afresh otherwise.
        """
        manifest = load_manifest(version_dir)
        unknown = None
        if manifest.unknown.method == "nearest_distance":
            threshold = unknown_threshold if unknown_threshold is not None else manifest.unknown.threshold
            if threshold is None:
                raise ArtifactError(f"{version_dir}: the nearest_distance rule has no threshold")
            # UNKNOWN_THRESHOLD, when set, is one threshold for everybody.
            per_class = unknown_threshold is None and manifest.unknown.class_thresholds is not None
            labelled = REFERENCE_LABELS in manifest.files
            unknown = UnknownRule.load(version_dir, threshold, per_reference=per_class, labelled=labelled)
        elif unknown_threshold is not None:
            log.warning(
                "UNKNOWN_THRESHOLD is ignored: %s features have no unknown rule", manifest.features.name
            )
        loaded_detector, loaded_extractor = stages or (None, None)
        if detector is not None and detector != manifest.detector.name:
            face_detector = create_detector(detector)
        elif loaded_detector is not None and _same_stage(loaded_detector, manifest.detector):
            face_detector = loaded_detector
        else:
            face_detector = create_detector(manifest.detector.name, manifest.detector.params)
        if loaded_extractor is not None and _same_stage(loaded_extractor, manifest.features):
            extractor = loaded_extractor
        else:
            extractor = create_extractor(manifest.features.name, manifest.features.params)
        return cls(
            manifest,
            face_detector,
            extractor,
            load_classifier(version_dir, manifest),
            unknown,
            max_faces,
            version_dir,
            Corrections.load(version_dir) if CORRECTIONS in manifest.files else None,
        )

    def decode(self, data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedPhoto:
        """Decode an upload, no smaller than this model's detector works at."""
        return decode_photo(data, max_pixels, min_side=self.detector.max_side)

    def recognize_bytes(
        self,
        data: bytes,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        observe: StageObserver | None = None,
        thorough: bool = False,
    ) -> Recognition:
        """Decode an image file's bytes and find and classify every face, in the file's own pixels.

        The one way from bytes to an answer: the service, both batch engines, evaluation and
        the benchmarks call it, so they decode alike. Decoding is the first stage
        (``decode``), timed and observed like the others, so ``observe`` can stop the work
        before detection. Boxes and sizes are the uploaded image's (after EXIF rotation),
        however small it was decoded. Raises ``ImageError`` for bytes that are not a photo
        the service takes, or that hold more than ``max_pixels``.
        """
        timings: dict[str, float] = {}
        with _stage("decode", timings, observe):
            photo = self.decode(data, max_pixels)
        result = self.recognize_decoded(photo, observe, thorough)
        return replace(result, timings=timings | result.timings)

    def recognize_decoded(
        self, photo: DecodedPhoto, observe: StageObserver | None = None, thorough: bool = False
    ) -> Recognition:
        """``recognize_rgb`` on a decoded photo, boxes in the uploaded image's pixels.

        For a caller that needs the pixels too (``python -m app cluster`` cuts each face out).
        """
        result = self.recognize_rgb(photo.rgb, observe, thorough)
        if photo.scale == 1.0:
            return result
        faces = [replace(f, box=f.box.scaled(photo.scale)) for f in result.faces]
        return replace(result, width=photo.width, height=photo.height, faces=faces)

    def recognize_rgb(
        self, rgb: np.ndarray, observe: StageObserver | None = None, thorough: bool = False
    ) -> Recognition:
        """Find and classify every face in an RGB uint8 pixel array; faces sorted left to right.

        ``thorough`` runs the detector's slower search, which finds smaller faces.
        """
        timings: dict[str, float] = {}
        with _stage("detect", timings, observe):
            faces = self.detector.detect(rgb, thorough)
        faces, truncated = self._largest(faces)
        results: list[FaceResult] = []
        features = None
        if faces:
            with _stage("crop", timings, observe):
                crops = [self.extractor.crop(rgb, face) for face in faces]
            with _stage("features", timings, observe):
                features = self.extractor.extract(crops)
            with _stage("classify", timings, observe):
                results = self.classify(faces, features)
        height, width = rgb.shape[:2]
        return Recognition(width, height, results, truncated, timings, features, tuple(faces))

    def _largest(self, faces: list[Detection]) -> tuple[list[Detection], bool]:
        if len(faces) <= self.max_faces:
            return faces, False
        keep = sorted(faces, key=lambda f: f.box.area, reverse=True)[: self.max_faces]
        return sorted(keep, key=lambda f: (f.box.x, f.box.y)), True

    def classify(self, faces: list[Detection], features: np.ndarray) -> list[FaceResult]:
        """Label detected faces from their feature rows; public so training can score cached features.

        A version that knows nobody (every person erased) answers ``unknown`` for every face.
        """
        probabilities = self.classifier.predict_proba(features)
        if not self.classes:
            return [
                self._face(face, row, Corrected(UNKNOWN, None))
                for face, row in zip(faces, probabilities, strict=True)
            ]
        unknown = (
            self.unknown.is_unknown(features) if self.unknown is not None else np.zeros(len(faces), bool)
        )
        labels = [self.classes[b] for b in probabilities.argmax(axis=1)]
        decided = (
            self.corrections.apply(features, labels, unknown, self.unknown, UNKNOWN)
            if self.corrections is not None and self.unknown is not None
            else [Corrected(UNKNOWN if u else label, None) for label, u in zip(labels, unknown, strict=True)]
        )
        return [self._face(f, row, d) for f, row, d in zip(faces, probabilities, decided, strict=True)]

    def _face(self, face: Detection, probabilities: np.ndarray, answer: Corrected) -> FaceResult:
        """One face's result: its label as decided, the best class's probability as confidence."""
        return FaceResult(
            box=face.box,
            label=answer.label,
            confidence=float(probabilities.max()) if probabilities.size else 0.0,
            probabilities={c: float(p) for c, p in zip(self.classes, probabilities, strict=True)},
            quality="low" if face.box.height < LOW_QUALITY_HEIGHT else "good",
            correction=answer.correction,
        )


@contextmanager
def _stage(name: str, timings: dict[str, float], observe: StageObserver | None) -> Iterator[None]:
    """Time the block as stage ``name`` into ``timings``, then tell ``observe``."""
    start = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - start
    if observe is not None:
        observe(name, timings[name])


def _same_stage(stage: FaceDetector | FeatureExtractor, spec: StageSpec) -> bool:
    """Whether a loaded stage is the one a manifest names."""
    return spec.names(stage.name, stage.params)
