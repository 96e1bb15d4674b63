"""The seed's hand-made features: raw colour pixels stacked with a wavelet edge image.

The wavelet image keeps the detail coefficients of a multi-level Haar/db1
decomposition and drops the approximation, which leaves edges (eyes, brows,
mouth) and removes overall lighting.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pywt

from app.pipeline.crop import crop_face
from app.pipeline.detect import Detection
from app.pipeline.features import FeatureExtractor


class WaveletFeatures(FeatureExtractor):
    name = "wavelet"

    def __init__(self, size: int = 32, wavelet: str = "db1", level: int = 5) -> None:
        self.size = size
        self.wavelet = wavelet
        self.level = level

    @property
    def params(self) -> dict[str, Any]:
        return {"size": self.size, "wavelet": self.wavelet, "level": self.level}

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return (4 * self.size * self.size,)

    def crop(self, rgb: np.ndarray, face: Detection) -> np.ndarray:
        return crop_face(rgb, face)

    def extract(self, crops: list[np.ndarray]) -> np.ndarray:
        rows = [self._one(crop) for crop in crops]
        return np.stack(rows) if rows else np.empty((0, *self.feature_shape), np.float32)

    def _one(self, crop: np.ndarray) -> np.ndarray:
        dims = (self.size, self.size)
        raw = cv2.resize(crop, dims)
        edges = cv2.resize(self.wavelet_image(crop), dims)
        return np.concatenate([raw.reshape(-1), edges.reshape(-1)]).astype(np.float32)

    def wavelet_image(self, crop: np.ndarray) -> np.ndarray:
        """Grayscale crop with the wavelet approximation zeroed, as uint8."""
        gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        coeffs = pywt.wavedec2(gray, self.wavelet, level=self.level)
        coeffs[0] = np.zeros_like(coeffs[0])
        detail = pywt.waverec2(coeffs, self.wavelet)
        return np.clip(detail * 255.0, 0, 255).astype(np.uint8)
