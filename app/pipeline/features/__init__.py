"""Features: turn face crops into fixed-length vectors for a classifier.

An extractor owns its crop geometry (``crop``), so training and serving cut faces
the same way; ``params`` go into the manifest, and the service rebuilds the same
extractor from them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from app.pipeline.align import Template
from app.pipeline.detect import Detection
from app.registry import Entry, Registry


class FeatureExtractor(ABC):
    #: Registry name, recorded in the model manifest.
    name: str
    #: True when rows are face embeddings, comparable by cosine distance: faces of one
    #: person lie close together. Enables the "unknown" rule and face matching in training.
    embedding: bool = False
    #: The landmark template ``crop`` warps faces onto, which names the crop and gives its size;
    #: None when faces are cut by their box. Anything that changes it is in ``params``.
    template: Template | None = None

    @property
    @abstractmethod
    def params(self) -> dict[str, Any]:
        """Settings that change the features; recorded in the manifest."""

    @property
    @abstractmethod
    def feature_shape(self) -> tuple[int, ...]:
        """The shape one row reshapes to: an image (h, w, c) or a vector (dim,)."""

    @abstractmethod
    def crop(self, rgb: np.ndarray, face: Detection) -> np.ndarray:
        """Cut ``face`` out of ``rgb`` the way this extractor expects."""

    @abstractmethod
    def extract(self, crops: list[np.ndarray]) -> np.ndarray:
        """Return an ``(len(crops), dim)`` float32 array, one row per crop."""


FEATURES = Registry(
    "feature extractor",
    {
        "facenet": Entry(
            "app.pipeline.features.facenet:FaceNetEmbedder",
            "FaceNet embeddings (Inception-ResNet-v1, 512-d)",
        ),
        "dlib": Entry(
            "app.pipeline.features.dlib_resnet:DlibResNetEmbedder",
            "dlib's face descriptor (ResNet-29, 128-d), faces warped onto dlib's template",
        ),
        "wavelet": Entry(
            "app.pipeline.features.wavelet:WaveletFeatures",
            "raw pixels plus a wavelet edge image (the seed's features)",
        ),
        "pixels": Entry("app.pipeline.features.pixels:PixelFeatures", "raw RGB pixels"),
    },
)


def create_extractor(name: str, params: dict[str, Any] | None = None) -> FeatureExtractor:
    """Build the extractor registered under ``name`` with the manifest's ``params``."""
    return FEATURES.load(name)(**(params or {}))
