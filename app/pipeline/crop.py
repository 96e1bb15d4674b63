"""Cut a face out of the image, optionally rotated so the eyes are level.

Alignment removes head roll before the features are computed, so the classifier
spends its capacity on identity rather than on pose.
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
    centre = (box.x + box.width / 2, box.y + box.height / 2)
    angle = 0.0
    if face.left_eye is not None and face.right_eye is not None:
        (lx, ly), (rx, ry) = face.left_eye, face.right_eye
        angle = math.degrees(math.atan2(ry - ly, rx - lx))
    side = max(box.width, box.height) * (1 + 2 * margin)
    scale = size / side
    matrix = cv2.getRotationMatrix2D(centre, angle, scale)
    matrix[0, 2] += size / 2 - centre[0]
    matrix[1, 2] += size / 2 - centre[1]
    return cv2.warpAffine(rgb, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
