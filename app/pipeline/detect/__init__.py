"""Face detection: find every face in an RGB image.

Every detector works on a copy downscaled to ``max_side`` pixels, so the cost of a
photo grows with its faces rather than its pixel count, and reports boxes in the
original image's pixels. ``thorough=True`` asks for a slower search that finds
smaller faces; the default search is what a plain request gets.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from app.registry import Entry, Registry

Point = tuple[float, float]

#: The facial points a detector may report, by name. "left" is the left of the image (the
#: person's right): ``mouth_left`` and ``mouth_right`` are the mouth's corners, ``mouth`` its
#: centre (BlazeFace gives the centre, CenterFace the corners). Alignment templates place
#: points of the same names.
LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right", "mouth")

#: BlazeFace models run in order on the whole photo until one finds a face (see detect/blazeface.py).
BLAZEFACE_MODELS = ("back", "full_range", "short_range")


@dataclass(frozen=True)
class Box:
    """An axis-aligned rectangle in image pixels."""

    x: int
    y: int
    width: int
    height: int

    @property
    def area(self) -> int:
        return self.width * self.height

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def scaled(self, factor: float) -> Box:
        return Box(
            round(self.x * factor),
            round(self.y * factor),
            round(self.width * factor),
            round(self.height * factor),
        )

    def moved(self, dx: int, dy: int) -> Box:
        return replace(self, x=self.x + dx, y=self.y + dy)

    def intersection(self, other: Box) -> int:
        """The area two boxes share, 0 when they do not meet."""
        w = min(self.x + self.width, other.x + other.width) - max(self.x, other.x)
        h = min(self.y + self.height, other.y + other.height) - max(self.y, other.y)
        return w * h if w > 0 and h > 0 else 0

    def iou(self, other: Box) -> float:
        """Intersection over union: 1 for the same box, 0 for boxes that do not meet."""
        inter = self.intersection(other)
        return inter / (self.area + other.area - inter) if inter else 0.0


@dataclass(frozen=True)
class Detection:
    """One face: its box, the detector's score, and the facial points the detector gives.

    ``landmarks`` maps names of ``LANDMARKS`` to points in image pixels; a detector that
    gives no points (or only some) leaves the rest out.
    """

    box: Box
    score: float = 1.0
    landmarks: Mapping[str, Point] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unknown = set(self.landmarks) - set(LANDMARKS)
        if unknown:
            raise ValueError(f"unknown landmark(s) {sorted(unknown)}; choose from {LANDMARKS}")

    @property
    def left_eye(self) -> Point | None:
        return self.landmarks.get("left_eye")

    @property
    def right_eye(self) -> Point | None:
        return self.landmarks.get("right_eye")

    def with_points_mapped(self, box: Box, point: Callable[[float, float], Point]) -> Detection:
        """The same face with a new ``box`` and every landmark passed through ``point``."""
        return replace(self, box=box, landmarks={k: point(*p) for k, p in self.landmarks.items()})

    def scaled(self, factor: float) -> Detection:
        return self.with_points_mapped(self.box.scaled(factor), lambda x, y: (x * factor, y * factor))

    def moved(self, dx: int, dy: int) -> Detection:
        """The same face in an image whose origin is ``(-dx, -dy)`` here: a tile's face in the photo."""
        return self.with_points_mapped(self.box.moved(dx, dy), lambda x, y: (x + dx, y + dy))


class FaceDetector(ABC):
    """Finds faces; subclasses implement ``_detect`` on the downscaled image."""

    #: Registry name, recorded in the model manifest.
    name: str

    def __init__(self, max_side: int) -> None:
        self.max_side = max_side

    @property
    def params(self) -> dict[str, Any]:
        """Settings that change what is detected; recorded in the manifest."""
        return {"max_side": self.max_side}

    def detect(self, rgb: np.ndarray, thorough: bool = False) -> list[Detection]:
        """Return the faces in ``rgb``, sorted left to right, boxes in its own pixels."""
        height, width = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))  # a 5000x1 image stays 1 high
        small = rgb if scale == 1.0 else cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        faces = [face.scaled(1.0 / scale) for face in self._detect(small, thorough)]
        return sorted(faces, key=lambda face: (face.box.x, face.box.y))

    @abstractmethod
    def _detect(self, rgb: np.ndarray, thorough: bool) -> list[Detection]:
        """Detect faces in an image already no larger than ``max_side``; more slowly if ``thorough``."""


DETECTORS = Registry(
    "face detector",
    {
        "blazeface": Entry(
            "app.pipeline.detect.blazeface:BlazeFaceDetector",
            "MediaPipe BlazeFace networks on ONNX Runtime, with tiles for small faces",
        ),
        "centerface": Entry(
            "app.pipeline.detect.centerface:CenterFaceDetector",
            "CenterFace on ONNX Runtime: one pass at the working size, made for small faces",
        ),
        "haar": Entry(
            "app.pipeline.detect.haar:HaarDetector",
            "OpenCV Haar cascades with a two-eye check (the seed's detector)",
        ),
    },
)


def create_detector(name: str, params: dict[str, Any] | None = None) -> FaceDetector:
    """Build the detector registered under ``name`` with the manifest's ``params``."""
    return DETECTORS.load(name)(**(params or {}))
