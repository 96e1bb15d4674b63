"""Where a fixed-size detector looks: tiles for small faces, merging, quarter turns.

A BlazeFace network sees its whole input at 128 to 256 px, so a face under about
5% of the photo's long side shrinks below what it can find. Running it again on
overlapping tiles shows it those faces larger; the answers of every run are then
merged into one list. None of this depends on how a network is run.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from app.pipeline.detect import Box, Detection


def tile_grid(width: int, height: int, side: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Squares of ``side`` px (x, y, width, height) covering the image, neighbours sharing ``overlap`` px.

    Tiles are spread evenly, so the last one ends on the image's edge rather than past it;
    a dimension no longer than ``side`` is one tile across.
    """

    def starts(length: int) -> list[int]:
        if length <= side:
            return [0]
        count = math.ceil((length - overlap) / (side - overlap))
        step = (length - side) / (count - 1)
        return [round(i * step) for i in range(count)]

    return [(x, y, min(side, width), min(side, height)) for y in starts(height) for x in starts(width)]


def cut_by_inner_edge(face: Detection, tile: tuple[int, int, int, int], width: int, height: int) -> bool:
    """The face's box touches an edge of the tile that is not an edge of the image: it may be cut."""
    x, y, w, h = tile
    box = face.box
    margin = 2
    return (
        (x > 0 and box.x <= margin)
        or (y > 0 and box.y <= margin)
        or (x + w < width and box.x + box.width >= w - margin)
        or (y + h < height and box.y + box.height >= h - margin)
    )


def _overlaps(a: Box, b: Box, iou: float) -> bool:
    """Same face: boxes overlap by more than ``iou``, one lies mostly inside the other, or
    the centre of one lies inside the other.

    The second test removes the half face a tile saw at its edge when the whole face
    was found elsewhere, whose IoU with the whole face is small; the third, the same
    small face boxed a few pixels apart by two tiles, at low scores.
    """
    inter = a.intersection(b)
    return inter > 0 and (
        inter / (a.area + b.area - inter) > iou
        or inter / min(a.area, b.area) > 0.6
        or _centre_inside(a, b)
        or _centre_inside(b, a)
    )


def _centre_inside(a: Box, b: Box) -> bool:
    cx, cy = a.x + a.width / 2, a.y + a.height / 2
    return b.x <= cx <= b.x + b.width and b.y <= cy <= b.y + b.height


def novel(
    known: list[Detection],
    candidates: list[Detection],
    iou: float,
    confirm: Callable[[Detection], bool] | None = None,
) -> list[Detection]:
    """The candidates that are none of the ``known`` faces nor each other, best score first,
    and that ``confirm`` (when given) accepts.

    ``known`` come from a pass that saw more of the photo, so their boxes are kept when
    a tile finds the same face again. Candidates are confirmed best first, and one that
    ``confirm`` rejects hides only the candidates boxing the same place (IoU over ``iou``):
    a larger false box around a small face must not hide that face's own candidate.
    """
    new: list[Detection] = []
    rejected: list[Detection] = []
    for face in sorted(candidates, key=lambda f: -f.score):
        if any(_overlaps(face.box, k.box, iou) for k in (*known, *new)):
            continue
        if any(face.box.iou(r.box) > iou for r in rejected):
            continue
        if confirm is None or confirm(face):
            new.append(face)
        else:
            rejected.append(face)
    return new


def unrotate(face: Detection, quarter_turns: int, width: int, height: int) -> Detection:
    """A face found in ``np.rot90(image, quarter_turns)`` mapped back into the ``width`` x ``height`` image.

    The landmarks keep their roles (the person's right eye stays ``left_eye``), so aligning on
    them turns the face upright again.
    """
    k = quarter_turns % 4

    def point(px: float, py: float) -> tuple[float, float]:
        # np.rot90 turns counter-clockwise: (x, y) in a w x h image goes to (y, w - x).
        w, h = (width, height) if k % 2 == 0 else (height, width)
        for _ in range(k):  # undo one turn at a time
            px, py = h - py, px
            w, h = h, w
        return px, py

    b = face.box
    corners = [point(b.x, b.y), point(b.x + b.width, b.y + b.height)]
    x0, x1 = sorted(c[0] for c in corners)
    y0, y1 = sorted(c[1] for c in corners)
    box = Box(round(x0), round(y0), round(x1 - x0), round(y1 - y0))
    return face.with_points_mapped(box, point)
