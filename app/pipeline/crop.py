"""Cut a face out of the image by its box, optionally rotated so the eyes are level.

Levelling the eyes removes head roll before the features are computed, so the classifier
spends its capacity on identity rather than on pose. Embeddings warp faces onto their
landmark template instead (``app.pipeline.align``); the box crop is their fallback for a
face without usable landmarks, and the crop of models trained before templates existed.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from app.pipeline.detect import Detection


def crop_face(rgb: np.ndarray, face: Detection, margin: float = 0.0) -> np.ndarray:
    """The face's box grown by ``margin`` (a fraction of its size) and clipped to the image."""
    box = face.box
    dx, dy = round(box.width * margin), round(box.height * margin)
    height, width = rgb.shape[:2]
    x0, y0 = max(0, box.x - dx), max(0, box.y - dy)
    x1, y1 = min(width, box.x + box.width + dx), min(height, box.y + box.height + dy)
    return rgb[y0:y1, x0:x1]


def align_face(rgb: np.ndarray, face: Detection, size: int, margin: float = 0.2) -> np.ndarray:
    """A ``size`` x ``size`` crop centred on the face, eyes levelled when they are known.

    The square has the box's longer side plus ``margin`` on each side; pixels that
    fall outside the image are filled by replicating its border.
    """
    box = face.box
    cx, cy = box.x + box.width / 2, box.y + box.height / 2
    angle = 0.0
    if face.left_eye is not None and face.right_eye is not None:
        (lx, ly), (rx, ry) = face.left_eye, face.right_eye
        angle = math.degrees(math.atan2(ry - ly, rx - lx))
    side = max(box.width, box.height) * (1 + 2 * margin)
    if size / side < 0.5:
        # warpAffine has no area filter: shrink the neighbourhood first, or a big face aliases.
        rgb, (cx, cy), side = shrink_around(rgb, (cx, cy), side, 2 * size / side)
    matrix = cv2.getRotationMatrix2D((cx, cy), angle, size / side)
    matrix[0, 2] += size / 2 - cx
    matrix[1, 2] += size / 2 - cy
    return cv2.warpAffine(rgb, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def shrink_around(
    rgb: np.ndarray, centre: tuple[float, float], side: float, factor: float
) -> tuple[np.ndarray, tuple[float, float], float]:
    """The region any rotation of the square can reach, resized by ``factor`` with INTER_AREA."""
    reach = side * 0.75  # > half the square's diagonal
    cx, cy = centre
    height, width = rgb.shape[:2]
    x0, y0 = max(0, int(cx - reach)), max(0, int(cy - reach))
    x1, y1 = min(width, math.ceil(cx + reach)), min(height, math.ceil(cy + reach))
    region = rgb[y0:y1, x0:x1]
    size = (max(1, round(region.shape[1] * factor)), max(1, round(region.shape[0] * factor)))
    small = cv2.resize(region, size, interpolation=cv2.INTER_AREA)
    return small, ((cx - x0) * factor, (cy - y0) * factor), side * factor
