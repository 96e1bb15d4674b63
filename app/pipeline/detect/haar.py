"""The classic detector: OpenCV Haar cascades, keeping faces with at least two eyes.

This is the seed notebook's rule, ``detectMultiScale(gray, 1.3, 5)`` for faces and
``haarcascade_eye`` inside each face; the eye check removes most false positives
at the cost of missing faces in profile or behind glasses.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from app.pipeline.detect import Box, Detection, FaceDetector, Point

CASCADE_DIR = Path(cv2.data.haarcascades)  # type: ignore[attr-defined]  # set at import, not in the stubs
THOROUGH_SCALE_FACTOR = 1.1


class _Cascades:
    """One face cascade and one eye cascade: not thread-safe, so each thread has its own."""

    def __init__(self) -> None:
        self.face = cv2.CascadeClassifier(str(CASCADE_DIR / "haarcascade_frontalface_default.xml"))
        self.eye = cv2.CascadeClassifier(str(CASCADE_DIR / "haarcascade_eye.xml"))
        if self.face.empty() or self.eye.empty():
            raise RuntimeError(f"could not load Haar cascades from {CASCADE_DIR}")


class HaarDetector(FaceDetector):
    name = "haar"

    def __init__(
        self,
        max_side: int = 1024,
        scale_factor: float = 1.3,
        min_neighbors: int = 5,
        min_eyes: int = 2,
    ) -> None:
        super().__init__(max_side)
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_eyes = min_eyes
        # OpenCV's CascadeClassifier keeps scratch state in the object: one instance called
        # from two threads at once corrupted it and crashed the process. Each thread that
        # detects gets its own set (the inference threads are few and live as long as the app).
        self._per_thread = threading.local()
        self._cascades()  # load one set now, so a broken install fails at start-up, not on a request

    @property
    def params(self) -> dict[str, Any]:
        return {
            **super().params,
            "scale_factor": self.scale_factor,
            "min_neighbors": self.min_neighbors,
            "min_eyes": self.min_eyes,
        }

    def _detect(self, rgb: np.ndarray, thorough: bool) -> list[Detection]:
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        # Thorough: a finer scale pyramid (more sizes tried), so faces between two steps are not skipped.
        scale_factor = min(self.scale_factor, THOROUGH_SCALE_FACTOR) if thorough else self.scale_factor
        found = []
        cascades = self._cascades()
        for x, y, w, h in cascades.face.detectMultiScale(gray, scale_factor, self.min_neighbors):
            eyes = cascades.eye.detectMultiScale(gray[y : y + h, x : x + w])
            if len(eyes) >= self.min_eyes:
                left, right = _two_eyes(eyes, x, y)
                points = {"left_eye": left, "right_eye": right}
                found.append(Detection(Box(int(x), int(y), int(w), int(h)), 1.0, points))
        return found

    def _cascades(self) -> _Cascades:
        """This thread's own cascades, loaded on its first call."""
        cascades = getattr(self._per_thread, "cascades", None)
        if cascades is None:
            cascades = self._per_thread.cascades = _Cascades()
        return cascades


def _two_eyes(eyes: Sequence[Sequence[int]], x0: int, y0: int) -> tuple[Point, Point]:
    """The centres of the two largest eye boxes, ordered left to right in the image."""
    largest = sorted(eyes, key=lambda e: e[2] * e[3], reverse=True)[:2]
    centres = sorted((x0 + ex + ew / 2, y0 + ey + eh / 2) for ex, ey, ew, eh in largest)
    return (float(centres[0][0]), float(centres[0][1])), (float(centres[1][0]), float(centres[1][1]))
