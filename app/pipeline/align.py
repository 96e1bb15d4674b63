"""Warp a face onto an embedding's landmark template: eyes, nose and mouth where the network expects them.

Each face embedding was trained on faces placed by a fixed template: the points where
the eyes, the nose tip and the mouth fall in its input square. Warping the detector's
landmarks onto those points with a similarity transform (rotation, uniform scale,
translation; the least-squares fit over the landmarks the detection and the template
share, as InsightFace and dlib align) removes head roll, size and position, so the
network sees faces framed the way it learnt them. A face whose landmarks cannot fix a
transform falls back to the box crop of ``app.pipeline.crop``.

Templates name their points as ``app.pipeline.detect.LANDMARKS`` does, image left first.
A template's ``mouth`` is the midpoint of its mouth corners, so a detector that gives the
mouth's centre (BlazeFace) and one that gives its corners (CenterFace) both align.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import cv2
import numpy as np

from app.pipeline.crop import align_face, shrink_around
from app.pipeline.detect import Detection, Point

#: A similarity transform from fewer points fits them exactly, so nothing checks the detector's points.
MIN_LANDMARKS = 3
#: Landmarks closer together than this (root mean square distance from their centroid, in image pixels)
#: cannot fix a scale or an angle: the face falls back to the box crop.
MIN_SPREAD = 2.0
#: Swapping these names mirrors a face: tried too, for detectors that name eyes by image position.
_MIRRORED = {
    "left_eye": "right_eye",
    "right_eye": "left_eye",
    "mouth_left": "mouth_right",
    "mouth_right": "mouth_left",
}


@dataclass(frozen=True)
class Template:
    """Where an embedding's input puts each facial point: ``points`` in a ``size`` x ``size`` crop."""

    name: str
    size: int
    points: Mapping[str, Point]

    @classmethod
    def from_five_points(cls, name: str, size: int, points: tuple[Point, ...]) -> Template:
        """A template from its eye centres, nose tip and mouth corners; the mouth centre is their midpoint."""
        left_eye, right_eye, nose, mouth_left, mouth_right = points
        mouth = ((mouth_left[0] + mouth_right[0]) / 2, (mouth_left[1] + mouth_right[1]) / 2)
        named = {
            "left_eye": left_eye,
            "right_eye": right_eye,
            "nose": nose,
            "mouth_left": mouth_left,
            "mouth_right": mouth_right,
            "mouth": mouth,
        }
        return cls(name, size, MappingProxyType(named))


#: InsightFace's ArcFace template for 112 x 112 crops: eye centres, nose tip, mouth corners.
ARCFACE_112: tuple[Point, ...] = (
    (38.2946, 51.6963),
    (73.5318, 51.5014),
    (56.0252, 71.7366),
    (41.5493, 92.3655),
    (70.7299, 92.2041),
)
#: dlib's mean face (its 5-point shape predictor's points) on a unit square; ``dlib_template`` pads it.
DLIB_UNIT: tuple[Point, ...] = (
    (0.224152, 0.2119465),
    (0.75610125, 0.2119465),
    (0.490127, 0.515625),
    (0.254149, 0.780233),
    (0.726104, 0.780233),
)


def arcface_template(size: int) -> Template:
    """The ArcFace template scaled from 112 pixels to ``size``."""
    scale = size / 112
    return Template.from_five_points("arcface", size, tuple((x * scale, y * scale) for x, y in ARCFACE_112))


def dlib_template(size: int, padding: float) -> Template:
    """dlib's chip: its mean face with ``padding`` (a fraction of the face square) on every side."""

    def place(v: float) -> float:
        return (padding + v) / (1 + 2 * padding) * size

    return Template.from_five_points("dlib", size, tuple((place(x), place(y)) for x, y in DLIB_UNIT))


def estimate_similarity(face: Detection, template: Template) -> np.ndarray | None:
    """The 2 x 3 similarity matrix taking the face's landmarks onto the template's, or None.

    None when fewer than ``MIN_LANDMARKS`` names are shared or the points are too close
    together to fix a transform. The least-squares fit is also tried with left and right
    swapped (a detector may name eyes by where they are in the image, which mirrors an
    upside-down face), and the closer fit is kept.
    """
    fits = [
        fit
        for names in (face.landmarks, {_MIRRORED.get(k, k): p for k, p in face.landmarks.items()})
        if (fit := _least_squares(names, template)) is not None
    ]
    return min(fits, key=lambda fit: fit[1])[0] if fits else None


def _least_squares(landmarks: Mapping[str, Point], template: Template) -> tuple[np.ndarray, float] | None:
    """The similarity minimising the squared distances to the template's points, and that sum.

    With ``a = s cos t`` and ``b = s sin t`` a similarity maps ``(x, y)`` to
    ``(a x - b y + tx, b x + a y + ty)``: linear in ``(a, b, tx, ty)``, so its least-squares fit
    is a linear least-squares problem (the same optimum as Umeyama's closed form in 2-D).
    """
    names = [name for name in template.points if name in landmarks]
    if len(names) < MIN_LANDMARKS:
        return None
    source = np.array([landmarks[name] for name in names], np.float64)
    target = np.array([template.points[name] for name in names], np.float64)
    if not np.isfinite(source).all():
        return None
    if np.sqrt(((source - source.mean(axis=0)) ** 2).sum(axis=1).mean()) < MIN_SPREAD:
        return None
    x, y = source[:, 0], source[:, 1]
    ones, zeros = np.ones_like(x), np.zeros_like(x)
    design = np.concatenate([np.stack([x, -y, ones, zeros], 1), np.stack([y, x, zeros, ones], 1)])
    (a, b, tx, ty), *_ = np.linalg.lstsq(design, np.concatenate([target[:, 0], target[:, 1]]), rcond=None)
    matrix = np.array([[a, -b, tx], [b, a, ty]])
    residual = float((((source @ matrix[:, :2].T + matrix[:, 2]) - target) ** 2).sum())
    return matrix, residual


def warp_to_template(rgb: np.ndarray, face: Detection, template: Template, margin: float = 0.2) -> np.ndarray:
    """The face warped onto ``template``: a ``template.size`` square crop of ``rgb`` (H x W x 3 uint8).

    A face without usable landmarks gets the box crop (``app.pipeline.crop.align_face`` with
    ``margin``) instead. Pixels outside the image replicate its border.
    """
    matrix = estimate_similarity(face, template)
    if matrix is None:
        return align_face(rgb, face, template.size, margin)
    size = template.size
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 0.5:
        # warpAffine has no area filter: shrink the face's neighbourhood first, or a big face aliases.
        inverse = cv2.invertAffineTransform(matrix)
        centre = inverse @ np.array([size / 2, size / 2, 1.0])
        factor = 2 * scale
        rgb, small_centre, _ = shrink_around(rgb, (centre[0], centre[1]), size / scale, factor)
        origin = centre - np.asarray(small_centre) / factor
        matrix = np.hstack([matrix[:, :2] / factor, (matrix[:, :2] @ origin + matrix[:, 2])[:, None]])
    return cv2.warpAffine(rgb, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
