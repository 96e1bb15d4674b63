"""Raw colour pixels of the face box, resized to a square: the input the cnn backend learns from.

The row is the flattened ``size`` x ``size`` RGB crop in 0..255, so a convolutional
model can reshape it back to an image (``feature_shape``) while serving keeps
handing every backend the same flat float32 rows.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from app.pipeline.crop import crop_face
from app.pipeline.detect import Detection
from app.pipeline.features import FeatureExtractor


class PixelFeatures(FeatureExtractor):
    name = "pixels"

    def __init__(self, size: int = 64) -> None:
        self.size = size

    @property
    def params(self) -> dict[str, Any]:
        return {"size": self.size}

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return (self.size, self.size, 3)

    def crop(self, rgb: np.ndarray, face: Detection) -> np.ndarray:
        return crop_face(rgb, face)

    def extract(self, crops: list[np.ndarray]) -> np.ndarray:
        dim = self.size * self.size * 3
        if not crops:
            return np.empty((0, dim), np.float32)
        # INTER_AREA: faces are usually shrunk, and it averages instead of aliasing.
        resized = [cv2.resize(c, (self.size, self.size), interpolation=cv2.INTER_AREA) for c in crops]
        return np.stack(resized).reshape(len(crops), dim).astype(np.float32)
