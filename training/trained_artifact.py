"""Train a model artifact from labelled feature rows: no folders, no detection, no evaluation.

This is the piece a caller with embeddings already in hand (the CLI after the
cache, an enrolment service adding one person) needs: it fits the backend's
classifier, chooses the unknown threshold, and returns everything in memory; the
caller saves it as a version and moves ``LATEST`` when it is ready.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from app.artifact.file_names import OPEN_SET_PNG, class_picture
from app.artifact.manifest import ClassInfo, Manifest, StageSpec, UnknownSpec, write_manifest
from app.model.recognizer import Recognizer
from app.model.unknown import UnknownRule
from app.pipeline.detect import FaceDetector
from app.pipeline.features import FeatureExtractor
from training.cache import installed_versions
from training.errors import TrainingInputError
from training.fitting import TRAINERS, FitOptions, TrainedModel
from training.unknown_threshold import ThresholdChoice, choose_threshold, plot_open_set

LIBRARIES = (
    "numpy",
    "opencv-python-headless",
    "scikit-learn",
    "PyWavelets",
    "skops",
    "skl2onnx",
    "onnxruntime",
    "tensorflow-cpu",
    "keras",
)
#: The cnn backend's validation split needs two faces of every person (one to fit, one to check).
CNN_MIN_PHOTOS = 2


@dataclass
class TrainedArtifact:
    """A fitted model, its unknown rule and its manifest (``files`` filled in by ``save``)."""

    manifest: Manifest
    model: TrainedModel
    unknown: UnknownRule | None
    threshold: ThresholdChoice

    def recognizer(self, detector: FaceDetector, extractor: FeatureExtractor) -> Recognizer:
        """Serve this artifact from memory (cross-validated evaluation refits one per held-out photo)."""
        return Recognizer(self.manifest, detector, extractor, self.model, self.unknown)

    def save(self, version_dir: Path, pictures: dict[str, Path] | None = None, plots: bool = True) -> None:
        """Write a new version folder; ``pictures`` maps class ids to picture files to carry along.

        ``plots=False`` leaves out the open-set plot, which serving never reads: an enrolment
        build, made for every change, saves matplotlib's import and drawing (docs/enrolment.md).
        """
        version_dir.mkdir(parents=True, exist_ok=False)
        self.model.save(version_dir)
        self.manifest.classifier = self.model.summary  # saving may add how the model is served
        if self.unknown is not None:
            self.unknown.save(version_dir)
        if plots and self.threshold.calibration is not None:
            plot_open_set(self.threshold.calibration, version_dir / OPEN_SET_PNG)
        self.manifest.classes = [
            info.model_copy(
                update={"picture": _copy_picture((pictures or {}).get(info.id), info.id, version_dir)}
            )
            for info in self.manifest.classes
        ]
        write_manifest(version_dir, self.manifest)


def check_trainable(backend: str, labels: np.ndarray) -> None:
    """Refuse, in one line, what a backend cannot learn from these faces."""
    people, counts = np.unique(labels, return_counts=True)
    if backend == "cnn" and len(people) < 2:
        raise TrainingInputError(
            "the cnn backend needs at least two people (a softmax over one class learns nothing); "
            "use --backend svm, which serves one person plus the unknown rule"
        )
    if backend == "cnn" and counts.min() < CNN_MIN_PHOTOS:
        raise TrainingInputError(
            f"the cnn backend needs {CNN_MIN_PHOTOS} usable photos of every person for its validation "
            f"split, and {people[counts.argmin()]} has {counts.min()}; use --backend svm, which learns "
            "from one photo per person"
        )


def fit_artifact(
    features: np.ndarray,
    labels: np.ndarray,
    classes: list[ClassInfo],
    detector: FaceDetector,
    extractor: FeatureExtractor,
    options: FitOptions,
    version: str | None = None,
    dataset: dict[str, Any] | None = None,
) -> TrainedArtifact:
    """Fit on one feature row per photo (``labels`` are class ids, ``classes`` their display details)."""
    class_ids = sorted({str(label) for label in labels})
    if [c.id for c in classes] != class_ids:
        raise ValueError(f"classes {[c.id for c in classes]} do not match the labels {class_ids}")
    check_trainable(options.backend, labels)
    model = _fit_backend(options, features, labels, extractor.feature_shape)
    threshold, unknown = (
        ThresholdChoice(None, {"source": "none", "rule": "features are not embeddings"}),
        None,
    )
    if extractor.embedding:
        threshold = choose_threshold(features, labels, extractor.name, extractor.params)
        if threshold.threshold is not None:
            per_face = (
                None
                if threshold.class_thresholds is None
                else np.array([threshold.class_thresholds[str(label)] for label in labels], np.float32)
            )
            unknown = UnknownRule(features, threshold.threshold, per_face, labels)
    manifest = Manifest(
        backend=options.backend,
        version=version or datetime.now(UTC).strftime("%Y%m%d-%H%M%S"),
        created=datetime.now(UTC),
        classes=classes,
        detector=StageSpec(name=detector.name, params=detector.params),
        features=StageSpec(name=extractor.name, params=extractor.params),
        classifier=model.summary,
        unknown=UnknownSpec(
            method="nearest_distance",
            threshold=threshold.threshold,
            class_thresholds=threshold.class_thresholds,
        )
        if unknown is not None
        else UnknownSpec(),
        library_versions=installed_versions(LIBRARIES),
        dataset=dataset or {},
        metrics={"unknown_threshold": threshold.summary},
    )
    return TrainedArtifact(manifest, model, unknown, threshold)


def _fit_backend(
    options: FitOptions, features: np.ndarray, labels: np.ndarray, feature_shape: tuple[int, ...]
) -> TrainedModel:
    return TRAINERS.load(options.backend)(features, labels, feature_shape, options)


def _copy_picture(source: Path | None, class_id: str, version_dir: Path) -> str | None:
    """A class picture shrunk into the artifact, so the artifact is self-contained; None if unreadable."""
    image = cv2.imread(str(source)) if source is not None else None
    if image is None:
        return None
    scale = min(1.0, 256 / max(image.shape[:2]))
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    name = class_picture(class_id)
    cv2.imwrite(str(version_dir / name), image, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return name
