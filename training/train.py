"""One training run, start to finish: scan, split, detect, fit, evaluate, write the artifact.

The test split is made on photos, before any face is detected, with a fixed seed;
nothing fitted, tuned or calibrated ever sees it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from sklearn.model_selection import train_test_split

from app.artifacts import ClassInfo, Manifest, StageSpec, UnknownSpec, point_latest, write_manifest
from app.pipeline.detect import create_detector
from app.pipeline.features import create_extractor
from app.recognizer import Recognizer
from app.unknown import UnknownRule
from training.dataset import Dataset, Photo, picture_path, scan
from training.evaluate import answer_photos, end_to_end_metrics
from training.faces import extract_faces, main_face_features, summarise_drops
from training.report import CONFUSION_PNG, plot_confusion, write_report
from training.unknown import OPEN_SET_PNG, calibrate, plot_open_set

log = logging.getLogger("training")

LIBRARIES = (
    "numpy",
    "opencv-python-headless",
    "scikit-learn",
    "PyWavelets",
    "skops",
    "tensorflow-cpu",
    "keras",
)


@dataclass(frozen=True)
class TrainConfig:
    data: Path
    artifacts: Path
    backend: str = "svm"
    detector: str = "blazeface"
    features: str = "facenet"
    test_size: float = 0.2
    seed: int = 42
    version: str | None = None
    max_per_class: int | None = None
    #: Small search spaces, for tests and smoke runs.
    quick: bool = False
    #: People left out entirely (leave-one-person-out evaluation of the unknown rule).
    exclude_classes: tuple[str, ...] = ()
    #: cnn search budget: trials, and the most epochs per trial (None: the backend's default).
    max_trials: int | None = None
    epochs: int | None = None


class TrainedModel(Protocol):
    summary: dict[str, Any]

    def predict_proba(self, features: np.ndarray) -> np.ndarray: ...

    def save(self, version_dir: Path) -> None: ...


def split_photos(dataset: Dataset, test_size: float, seed: int) -> tuple[list[Photo], list[Photo]]:
    """Stratified by person, fixed seed: the same folder always gives the same test photos."""
    train, test = train_test_split(
        dataset.photos, test_size=test_size, random_state=seed, stratify=[p.label for p in dataset.photos]
    )
    return list(train), list(test)


def fit_backend(
    config: TrainConfig, features: np.ndarray, labels: np.ndarray, feature_shape: tuple[int, ...]
) -> TrainedModel:
    if config.backend == "svm":
        from training import svm

        return svm.fit(features, labels, seed=config.seed, quick=config.quick)
    if config.backend == "cnn":
        from training import cnn

        return cnn.fit(
            features,
            labels,
            feature_shape,
            seed=config.seed,
            quick=config.quick,
            max_trials=config.max_trials,
            epochs=config.epochs,
        )
    raise ValueError(f"unknown backend {config.backend!r}")


def train(config: TrainConfig) -> Path:
    """Run the whole pipeline and return the new version's folder (now ``LATEST``)."""
    dataset = scan(config.data, config.max_per_class)
    for skipped in dataset.skipped:
        log.warning("skipped %s: %s", skipped.path, skipped.reason)
    train_photos, test_photos = split_photos(dataset, config.test_size, config.seed)
    if config.exclude_classes:
        # Leave-one-person-out runs: the same split as the full run, minus the excluded people.
        dataset = dataset.without(config.exclude_classes)
        train_photos = [p for p in train_photos if p.label not in config.exclude_classes]
        test_photos = [p for p in test_photos if p.label not in config.exclude_classes]
    classes = dataset.class_ids
    log.info(
        "%d photos of %d classes: %d train, %d test",
        len(dataset.photos),
        len(classes),
        len(train_photos),
        len(test_photos),
    )

    detector = create_detector(config.detector)
    extractor = create_extractor(config.features)
    samples, train_drops = extract_faces(train_photos, detector, extractor, "train photos")
    for dropped in train_drops:
        log.warning("dropped %s: %s", dropped.path, dropped.reason)
    kept = [s for s in samples if s is not None]
    features = main_face_features(kept, extractor)
    labels = np.array([s.photo.label for s in kept])
    log.info("training %s on %d faces (%d photos dropped)", config.backend, len(kept), len(train_drops))
    model = fit_backend(config, features, labels, extractor.feature_shape)

    version = config.version or datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    backend_dir = config.artifacts / config.backend
    version_dir = backend_dir / version
    version_dir.mkdir(parents=True, exist_ok=False)
    model.save(version_dir)
    unknown_spec, calibration = UnknownSpec(), None
    if extractor.embedding:
        calibration = calibrate(features, labels)
        UnknownRule(features, calibration.threshold).save(version_dir)
        plot_open_set(calibration, version_dir / OPEN_SET_PNG)
        unknown_spec = UnknownSpec(method="nearest_distance", threshold=calibration.threshold)
    manifest = Manifest(
        backend=config.backend,
        version=version,
        created=datetime.now(UTC),
        classes=_copy_pictures(dataset, version_dir),
        detector=StageSpec(name=detector.name, params=detector.params),
        features=StageSpec(name=extractor.name, params=extractor.params),
        classifier=model.summary,
        unknown=unknown_spec,
        library_versions=_library_versions(),
        dataset={
            "root": str(config.data),
            "fingerprint": dataset.fingerprint(),
            "photos": len(dataset.photos),
            "train_photos": len(train_photos),
            "test_photos": len(test_photos),
            "split_seed": config.seed,
            "test_size": config.test_size,
            "excluded_classes": list(config.exclude_classes),
            "train_faces": len(kept),
            "train_dropped": summarise_drops(train_drops),
            "skipped": [f"{s.path.name}: {s.reason}" for s in dataset.skipped],
            "test_files": sorted(f"{p.label}/{p.path.name}" for p in test_photos),
        },
    )
    write_manifest(version_dir, manifest)  # the evaluation below loads the artifact as the service does

    answers = answer_photos(Recognizer.from_artifact(version_dir), test_photos, "test photos")
    metrics = end_to_end_metrics(answers, classes)
    log.info("test accuracy, end to end: %.1f%% of %d photos", 100 * metrics["accuracy"], len(test_photos))
    manifest.metrics = {"test": metrics}
    if calibration is not None:
        manifest.metrics["unknown_calibration"] = calibration.summary()
    plot_confusion(metrics, version_dir / CONFUSION_PNG)
    write_report(manifest, version_dir / "report.md")
    write_manifest(version_dir, manifest)
    point_latest(backend_dir, version)
    log.info("wrote %s", version_dir)
    return version_dir


def _copy_pictures(dataset: Dataset, version_dir: Path) -> list[ClassInfo]:
    """Copy each class picture into the artifact, shrunk, so the artifact is self-contained."""
    infos = []
    for info in dataset.classes:
        source = picture_path(dataset.root, info)
        name = None
        if source is not None:
            image = cv2.imread(str(source))
            if image is not None:
                scale = min(1.0, 256 / max(image.shape[:2]))
                image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                name = f"class-{info.id}.jpg"
                cv2.imwrite(str(version_dir / name), image, [cv2.IMWRITE_JPEG_QUALITY, 85])
        infos.append(info.model_copy(update={"picture": name}))
    return infos


def _library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions
