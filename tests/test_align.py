"""align: faces warped onto a landmark template, on a real photo turned, scaled and enlarged."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from app.pipeline.align import (
    MIN_LANDMARKS,
    Template,
    arcface_template,
    dlib_template,
    estimate_similarity,
    warp_to_template,
)
from app.pipeline.crop import align_face
from app.pipeline.detect import Box, Detection, create_detector
from tests.conftest import LabelledPhoto

TEMPLATE = arcface_template(160)
#: A turn and a shrink a face might have in another photo: 25 degrees, 0.7 times the size.
ANGLE, SCALE = 25.0, 0.7


@pytest.fixture(scope="module")
def detector():
    return create_detector("blazeface")


@pytest.fixture(scope="module")
def photo(one_face: LabelledPhoto, detector) -> tuple[np.ndarray, Detection]:
    rgb = one_face.rgb
    (face,) = detector.detect(rgb)
    return rgb, face


def turned(rgb: np.ndarray, angle: float, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """``rgb`` turned by ``angle`` degrees and scaled about its centre, on a canvas it fits in; the matrix."""
    height, width = rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, scale)
    side = round(max(height, width) * scale * 1.5)
    matrix[:, 2] += (side / 2 - width / 2, side / 2 - height / 2)
    return cv2.warpAffine(
        rgb, matrix, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    ), matrix


def mapped(face: Detection, matrix: np.ndarray) -> Detection:
    """``face`` in the image ``matrix`` made (its box is left as it was: alignment does not use it)."""

    def point(x: float, y: float) -> tuple[float, float]:
        u, v = matrix @ (x, y, 1.0)
        return float(u), float(v)

    return face.with_points_mapped(face.box, point)


def on_template(face: Detection, template: Template) -> np.ndarray:
    """How far each shared landmark lands from its template point, in crop pixels."""
    matrix = estimate_similarity(face, template)
    assert matrix is not None
    names = [n for n in template.points if n in face.landmarks]
    source = np.array([face.landmarks[n] for n in names])
    target = np.array([template.points[n] for n in names])
    return np.linalg.norm(source @ matrix[:, :2].T + matrix[:, 2] - target, axis=1)


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two crops' grey levels, inside the face (the crop's middle)."""
    size = a.shape[0]
    inner = slice(size // 8, size - size // 8)
    grey = [cv2.cvtColor(c, cv2.COLOR_RGB2GRAY)[inner, inner].astype(np.float32) for c in (a, b)]
    return float(np.abs(grey[0] - grey[1]).mean())


def test_templates_place_the_issues_points() -> None:
    arcface = arcface_template(224)
    assert arcface.points["left_eye"] == pytest.approx((38.2946 * 2, 51.6963 * 2))
    assert arcface.points["mouth"] == pytest.approx(((41.5493 + 70.7299), (92.3655 + 92.2041)))
    dlib = dlib_template(150, 0.25)
    assert dlib.points["right_eye"] == pytest.approx(
        ((0.25 + 0.75610125) / 1.5 * 150, (0.25 + 0.2119465) / 1.5 * 150)
    )
    assert set(dlib.points) == set(arcface.points)


def test_a_turned_and_shrunk_face_lands_on_the_template(photo, detector) -> None:
    """The detector's points on the turned photo map onto the template, and both photos crop alike."""
    rgb, face = photo
    before = warp_to_template(rgb, face, TEMPLATE)
    other_rgb, _ = turned(rgb, ANGLE, SCALE)
    (other,) = detector.detect(other_rgb)

    assert on_template(face, TEMPLATE).max() < 0.06 * TEMPLATE.size
    assert on_template(other, TEMPLATE).max() < 0.06 * TEMPLATE.size
    after = warp_to_template(other_rgb, other, TEMPLATE)
    assert after.shape == before.shape == (160, 160, 3)
    # The detector's points move by a pixel or two between the photos, so the crops differ a little;
    # the box crop, eyes levelled, of the same two photos differs more: its scale follows the box.
    boxed = difference(align_face(rgb, face, 160), align_face(other_rgb, other, 160))
    assert difference(before, after) < 0.6 * boxed


def test_a_known_similarity_is_undone_exactly(photo) -> None:
    """Landmarks moved by a known turn and scale: the estimate undoes it, to a hundredth of a pixel."""
    rgb, face = photo
    other_rgb, matrix = turned(rgb, ANGLE, SCALE)
    other = mapped(face, matrix)
    original, estimate = estimate_similarity(face, TEMPLATE), estimate_similarity(other, TEMPLATE)
    assert original is not None and estimate is not None
    composed = estimate @ np.vstack([matrix, (0, 0, 1)])
    np.testing.assert_allclose(composed, original, atol=1e-2)
    assert difference(warp_to_template(rgb, face, TEMPLATE), warp_to_template(other_rgb, other, TEMPLATE)) < 5


def test_a_large_face_is_shrunk_before_the_warp(photo) -> None:
    """Four times the pixels: the area filter first, then the same crop as from the photo itself."""
    rgb, face = photo
    big = cv2.resize(rgb, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    big_face = mapped(face, np.array([[4.0, 0, 1.5], [0, 4.0, 1.5]]))  # pixel centres: 4 x + 1.5
    assert difference(warp_to_template(rgb, face, TEMPLATE), warp_to_template(big, big_face, TEMPLATE)) < 2.5


def test_an_upside_down_face_with_eyes_named_by_image_side_is_turned_upright(photo) -> None:
    """A half-turned photo whose detector names the eyes left to right in the image (as BlazeFace does)."""
    rgb, face = photo
    upside_down, matrix = turned(rgb, 180.0, 1.0)
    other = mapped(face, matrix)
    by_image_side = dict(other.landmarks)
    by_image_side["left_eye"], by_image_side["right_eye"] = sorted(
        [other.landmarks["left_eye"], other.landmarks["right_eye"]]
    )
    other = Detection(other.box, other.score, by_image_side)
    assert (
        difference(warp_to_template(rgb, face, TEMPLATE), warp_to_template(upside_down, other, TEMPLATE)) < 6
    )


def test_a_face_without_landmarks_gets_the_box_crop(photo) -> None:
    rgb, face = photo
    bare = Detection(face.box, face.score)
    np.testing.assert_array_equal(
        warp_to_template(rgb, bare, TEMPLATE, margin=0.3), align_face(rgb, bare, 160, 0.3)
    )
    too_few = Detection(face.box, face.score, {k: face.landmarks[k] for k in ("left_eye", "right_eye")})
    assert len(too_few.landmarks) < MIN_LANDMARKS
    np.testing.assert_array_equal(warp_to_template(rgb, too_few, TEMPLATE), align_face(rgb, too_few, 160))


def test_degenerate_landmarks_fall_back_instead_of_crashing() -> None:
    rgb = np.full((120, 120, 3), 90, np.uint8)
    cv2.circle(rgb, (60, 60), 20, (200, 150, 120), -1)
    box = Box(30, 30, 60, 60)
    same_point = Detection(
        box, landmarks=dict.fromkeys(("left_eye", "right_eye", "nose", "mouth"), (60.0, 60.0))
    )
    assert estimate_similarity(same_point, TEMPLATE) is None
    np.testing.assert_array_equal(
        warp_to_template(rgb, same_point, TEMPLATE), align_face(rgb, same_point, 160)
    )
    not_a_number = Detection(
        box, landmarks={"left_eye": (50.0, 50.0), "right_eye": (70.0, 50.0), "nose": (np.nan, 60.0)}
    )
    assert estimate_similarity(not_a_number, TEMPLATE) is None
