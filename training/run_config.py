"""What a training run is asked to do, and the detector and embedder it does it with.

Kept apart from ``training.train``, which imports scikit-learn and the rest of the model
search: the command line builds these first, so the networks load while those imports run
(``training.cli``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.labelled.folders import Photo
from app.pipeline.detect import FaceDetector, create_detector
from app.pipeline.detect.blazeface import SMALL_FACE_SEARCHES
from app.pipeline.features import FeatureExtractor, create_extractor
from training.cache import EmbeddingCache, PhotoFaces
from training.faces import main_face_features
from training.fitting import FitOptions

#: The stages a run detects and embeds with unless asked otherwise (``--detector``, ``--features``);
#: the enrolment service builds with them too.
DEFAULT_DETECTOR = "blazeface"
DEFAULT_FEATURES = "facenet"
#: The default detector's settings for new models, over its own defaults (which are what a
#: manifest without them meant): photos up to 1280 px searched at their size, and those too
#: large for BlazeFace's whole-photo pass searched by CenterFace instead of tiles (issue 25,
#: docs/benchmarks.md). The manifest records them.
DEFAULT_DETECTOR_PARAMS: dict[str, Any] = {"max_side": 1280, "small_faces": "centerface"}
#: How new models search photos too large for the whole-photo pass (``--small-faces``).
DEFAULT_SMALL_FACES: str = DEFAULT_DETECTOR_PARAMS["small_faces"]


def new_detector(name: str, small_faces: str = DEFAULT_SMALL_FACES) -> FaceDetector:
    """The detector ``name`` as a new model gets it: the default one with ``DEFAULT_DETECTOR_PARAMS``,
    or with its own settings (the tile search, as models trained before CenterFace) for ``tiles``.

    ``small_faces`` is one of ``SMALL_FACE_SEARCHES`` (``--small-faces``): CenterFace finds smaller
    faces, the tiles cost less CPU on large photos (docs/load.md)."""
    if small_faces not in SMALL_FACE_SEARCHES:
        raise ValueError(f"unknown small-face search {small_faces!r}; choose from {SMALL_FACE_SEARCHES}")
    default = name == DEFAULT_DETECTOR and small_faces == DEFAULT_SMALL_FACES
    return create_detector(name, DEFAULT_DETECTOR_PARAMS if default else None)


@dataclass(frozen=True)
class TrainConfig:
    data: Path
    artifacts: Path
    backend: str = "svm"
    detector: str = DEFAULT_DETECTOR
    #: How the default detector searches large photos for small faces: one of ``SMALL_FACE_SEARCHES``.
    small_faces: str = DEFAULT_SMALL_FACES
    features: str = DEFAULT_FEATURES
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
    #: Embedding cache folder; None detects and embeds every photo afresh.
    cache_dir: Path | None = None

    @property
    def options(self) -> FitOptions:
        return FitOptions(self.backend, self.seed, self.quick, self.max_trials, self.epochs)


@dataclass(frozen=True)
class Stages:
    """The pipeline stages a run detects and embeds with, and the cache in front of them."""

    detector: FaceDetector
    extractor: FeatureExtractor
    cache: EmbeddingCache | None

    @classmethod
    def create(cls, config: TrainConfig) -> Stages:
        detector = new_detector(config.detector, config.small_faces)
        extractor = create_extractor(config.features)
        cache = (
            None
            if config.cache_dir is None
            else EmbeddingCache.for_stages(config.cache_dir, detector, extractor)
        )
        return cls(detector, extractor, cache)

    def features_of(self, photos: list[Photo], faces: dict[Photo, PhotoFaces]) -> np.ndarray:
        return main_face_features([(p.label, faces[p]) for p in photos], self.extractor.embedding)
