"""One training run, start to finish: scan, detect and embed (cached), split, fit, evaluate, write.

Every photo is detected and embedded once, through the embedding cache, before the
split; the split is then made on the photos with a usable face, with a fixed seed,
and nothing fitted, tuned or calibrated ever sees a test photo.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from app.artifact.file_names import CONFUSION_PNG, REPORT
from app.artifact.manifest import ArtifactError, ClassInfo, check_version_name, point_latest, write_manifest
from app.labelled.folders import Dataset, Photo, Skipped, picture_path, scan
from app.labelled.scores import end_to_end_metrics
from app.model.recognizer import Recognizer
from training.cache import PhotoFaces
from training.cached_scores import answer_from_faces, leave_one_photo_out
from training.errors import TrainingInputError
from training.faces import embed_photos, summarise_drops
from training.report import plot_confusion, write_report
from training.run_config import Stages, TrainConfig
from training.split import EvaluationPlan, plan_evaluation
from training.trained_artifact import check_trainable, fit_artifact

__all__ = ["Stages", "TrainConfig", "train", "usable_photos"]

log = logging.getLogger("training")


def usable_photos(dataset: Dataset, stages: Stages) -> tuple[Dataset, dict[Photo, PhotoFaces]]:
    """The dataset cut to photos with a face (people without one go), and every photo's faces."""
    faces, dropped = embed_photos(dataset.photos, stages.detector, stages.extractor, stages.cache, "detect")
    kept = [p for p in dataset.photos if p in faces]
    gone = sorted({p.label for p in dataset.photos} - {p.label for p in kept})
    people = [
        Skipped(dataset.root / label, "no usable face in any of its photos; person left out")
        for label in gone
    ]
    for skipped in (*dropped, *people):
        log.warning("skipped %s: %s", skipped.path, skipped.reason)
    usable = dataset.keeping(kept, (*dropped, *people))
    if not usable.photos:
        raise TrainingInputError(f"no face found in any photo under {dataset.root}")
    return usable, faces


def train(
    config: TrainConfig,
    load_stages: Callable[[], Stages] | None = None,
    imported: Callable[[], object] | None = None,
) -> Path:
    """Run the whole pipeline and return the new version's folder (now ``LATEST``).

    ``load_stages`` gives the detector and embedder when they are first needed (the command
    line starts loading them before importing this module); by default they are built then.
    ``imported`` waits for the model search's imports, which the command line runs in a thread
    while the photos are read and detected; nothing after it may run before it returns (this
    thread would import the same modules).
    """
    backend_dir = config.artifacts / config.backend
    version_dir = _new_version_dir(backend_dir, config.version)
    scanned = scan(config.data, config.max_per_class)
    stages = load_stages() if load_stages is not None else Stages.create(config)
    dataset, faces = usable_photos(scanned, stages)
    if imported is not None:
        imported()
    plan = plan_evaluation(dataset.photos, config.test_size, config.seed)
    if config.exclude_classes:
        # Leave-one-person-out runs: the same split as the full run, minus the excluded people.
        dataset = dataset.without(config.exclude_classes)
        plan = EvaluationPlan(
            plan.method,
            [p for p in plan.train if p.label not in config.exclude_classes],
            [p for p in plan.test if p.label not in config.exclude_classes],
            plan.why,
        )
    labels = np.array([p.label for p in plan.train])
    check_trainable(config.backend, labels)
    if config.backend == "cnn" and plan.method == "leave_one_photo_out":
        raise TrainingInputError(
            f"the cnn backend cannot be scored leave-one-photo-out (a model search per photo): {plan.why}; "
            "use --test-size 0 to train it without a score, or --backend svm"
        )
    log.info(
        "%d usable photos of %d people; evaluation: %s (%s)",
        len(dataset.photos),
        len(dataset.classes),
        plan.method,
        plan.why,
    )
    features = stages.features_of(plan.train, faces)
    artifact = fit_artifact(
        features,
        labels,
        dataset.classes,
        stages.detector,
        stages.extractor,
        config.options,
        version_dir.name,
        _dataset_summary(config, dataset, plan),
    )
    artifact.save(
        version_dir, {c.id: path for c in dataset.classes if (path := picture_path(dataset.root, c))}
    )
    manifest = artifact.manifest
    metrics = _evaluate(config, plan, stages, faces, features, version_dir, artifact.manifest.classes)
    manifest.metrics["evaluation"] = {"method": plan.method, "why": plan.why}
    if metrics is not None:
        manifest.metrics["test" if plan.method == "held_out" else plan.method] = metrics
        plot_confusion(metrics, plan.method, version_dir / CONFUSION_PNG)
    write_report(manifest, version_dir / REPORT)
    write_manifest(version_dir, manifest)
    point_latest(backend_dir, version_dir.name)
    log.info("wrote %s", version_dir)
    return version_dir


def _evaluate(
    config: TrainConfig,
    plan: EvaluationPlan,
    stages: Stages,
    faces: dict[Photo, PhotoFaces],
    features: np.ndarray,
    version_dir: Path,
    classes: list[ClassInfo],
) -> dict | None:
    """End-to-end scores by the plan's method; None when there is nothing to score."""
    if plan.method == "held_out":
        # The artifact is loaded exactly as the service loads it, then answers from the cached faces.
        # The run's detector and embedder are reused: they are what the manifest names.
        recognizer = Recognizer.from_artifact(version_dir, stages=(stages.detector, stages.extractor))
        answers = [answer_from_faces(recognizer, photo, faces[photo]) for photo in plan.test]
        metrics = end_to_end_metrics(answers, recognizer.classes)
        log.info(
            "held-out accuracy, end to end: %.1f%% of %d photos", 100 * metrics["accuracy"], len(answers)
        )
        return metrics
    if plan.method == "none":
        log.info("no held-out figure: %s", plan.why)
        return None

    def refit(x: np.ndarray, y: np.ndarray) -> Recognizer:
        fold = fit_artifact(x, y, classes, stages.detector, stages.extractor, config.options)
        return fold.recognizer(stages.detector, stages.extractor)

    answers, unscored = leave_one_photo_out(plan.train, faces, features, refit)
    if not answers:
        log.info("no score: every person has a single photo, which leaving out removes from the model")
        return None
    metrics = end_to_end_metrics(answers, [c.id for c in classes])
    metrics["unscored_people"] = unscored
    log.info(
        "leave-one-photo-out accuracy on the training photos, end to end: %.1f%% of %d photos",
        100 * metrics["accuracy"],
        len(answers),
    )
    return metrics


def _new_version_dir(backend_dir: Path, version: str | None) -> Path:
    """The folder the run will write, refused up front if the name is unsafe or taken, or its
    parent cannot be made (an OSError): before any photo is detected, not after."""
    backend_dir.mkdir(parents=True, exist_ok=True)
    if version is None:
        return backend_dir / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    try:
        check_version_name(version)
    except ArtifactError as exc:
        raise TrainingInputError(f"{exc}: use letters, digits, '.', '_' and '-'") from exc
    if (backend_dir / version).exists():
        raise TrainingInputError(
            f"version {version} already exists in {backend_dir}; choose another --version"
        )
    return backend_dir / version


def _dataset_summary(config: TrainConfig, dataset: Dataset, plan: EvaluationPlan) -> dict:
    return {
        "root": str(config.data),
        "fingerprint": dataset.fingerprint(),
        "photos": len(dataset.photos),
        "train_photos": len(plan.train),
        "test_photos": len(plan.test),
        "split_seed": config.seed,
        "test_size": config.test_size,
        "evaluation": plan.method,
        "excluded_classes": list(config.exclude_classes),
        "train_faces": len(plan.train),
        "skipped": [f"{s.path.name}: {s.reason}" for s in dataset.skipped],
        "skipped_counts": summarise_drops(dataset.skipped),
        "test_files": sorted(p.path.relative_to(dataset.root).as_posix() for p in plan.test),
    }
