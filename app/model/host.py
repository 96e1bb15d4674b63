"""Owns the model the service answers with: loading, warm-up, readiness and swaps.

A load builds a complete ``Recognizer`` off to the side and only then replaces the
reference requests read, so a request sees either the old model or the new one,
never a half-loaded one; a failed load leaves the current model serving.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from app.artifact.manifest import resolve_version_dir
from app.config import Settings
from app.model.recognizer import Recognizer
from app.pipeline.detect import Box, Detection, FaceDetector
from app.pipeline.features import FeatureExtractor

log = logging.getLogger("app.model")


class ModelHost:
    def __init__(self, settings: Settings, on_load: Callable[[Recognizer], None] | None = None) -> None:
        self.settings = settings
        self._on_load = on_load
        self._current: Recognizer | None = None
        self.error: str | None = "model not loaded yet"
        #: The folder ``LATEST`` named when it was last followed, loaded or not: the watcher
        #: reacts only when the pointer moves, so it neither undoes an explicit reload nor
        #: retries a broken version every few seconds.
        self._followed: Path | None = None
        self._load_lock = threading.Lock()

    @property
    def current(self) -> Recognizer | None:
        """The ready model, or None while none has loaded."""
        return self._current

    def pointer_moved(self) -> bool:
        """Whether ``LATEST`` has moved since it was last followed (never when a version is pinned)."""
        s = self.settings
        if s.model_version is not None:
            return False
        try:
            latest = resolve_version_dir(s.artifacts_dir, s.classifier_backend)
        except Exception:
            return False
        return latest != self._followed

    def load(self, version: str | None = None) -> Recognizer:
        """Load, verify and warm up a version, then make it current.

        The default is the configured version: ``MODEL_VERSION``, else what ``LATEST`` names now.

        Raises whatever went wrong; the previous model, if any, keeps serving.
        """
        s = self.settings
        with self._load_lock:
            try:
                version_dir = resolve_version_dir(
                    s.artifacts_dir, s.classifier_backend, version or s.model_version
                )
                if version is None and s.model_version is None:
                    self._followed = version_dir
                recognizer = load_recognizer(s, version_dir, self._stages())
            except Exception as exc:
                if self._current is None:
                    self.error = f"{type(exc).__name__}: {exc}"
                log.error(
                    "model load failed, %s: %s",
                    "not ready" if self._current is None else "keeping the current model",
                    exc,
                )
                raise
            self.serve(recognizer)
            return recognizer

    def _stages(self) -> tuple[FaceDetector, FeatureExtractor] | None:
        """The served model's detector and embedder, which a new version reuses when it names the
        same ones: a swap then loads the classifier and references only, not the networks again."""
        current = self._current
        return (current.detector, current.extractor) if current is not None else None

    def serve(self, recognizer: Recognizer) -> None:
        """Make a complete, warmed-up model current: what ``load`` ends with.

        Public so a model built elsewhere (a test's small one) is served the same way.
        """
        self._current, self.error = recognizer, None
        if self._on_load is not None:
            self._on_load(recognizer)
        log.info(
            "serving model %s/%s from %s",
            recognizer.manifest.backend,
            recognizer.manifest.version,
            recognizer.version_dir or "memory",
        )


def load_recognizer(
    settings: Settings,
    version_dir: Path | None = None,
    stages: tuple[FaceDetector, FeatureExtractor] | None = None,
) -> Recognizer:
    """A version as ``settings`` ask to serve it, verified and warmed up; by default the one
    they name (``MODEL_VERSION``, else what ``LATEST`` names now). ``stages`` are loaded ones
    it may reuse (``Recognizer.from_artifact``).

    What a batch job loads once (``python -m app classify``, a Ray actor). A service goes
    through ``ModelHost.load``, which also follows ``LATEST``, logs, and keeps the last good model.
    """
    if version_dir is None:
        version_dir = resolve_version_dir(
            settings.artifacts_dir, settings.classifier_backend, settings.model_version
        )
    recognizer = Recognizer.from_artifact(
        version_dir,
        detector=settings.face_detector,
        unknown_threshold=settings.unknown_threshold,
        max_faces=settings.max_faces,
        stages=stages,
    )
    warm_up(recognizer)
    return recognizer


def warm_up(recognizer: Recognizer) -> None:
    """Run every stage once, so the first real request does not pay for lazy initialisation."""
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    recognizer.recognize_rgb(image)
    # Noise holds no face, so the classifier is warmed on a crop the extractor cuts itself: the
    # size its network expects, whatever the embedding.
    crop = recognizer.extractor.crop(image, Detection(Box(80, 40, 160, 160)))
    recognizer.classifier.predict_proba(recognizer.extractor.extract([crop]))
