"""detect and crop: the detectors on real photos, composites and face-free images."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from app.pipeline.crop import align_face, crop_face
from app.pipeline.detect import Box, Detection, create_detector
from tests.images import no_face_image, side_by_side

DETECTORS = ["haar", "blazeface", "centerface"]


@pytest.fixture(scope="module", params=DETECTORS)
def detector(request):
    return create_detector(request.param)


def test_finds_the_face_in_a_portrait(detector, one_face) -> None:
    rgb = one_face.rgb
    (face,) = detector.detect(rgb)
    assert face.box.width > 20 and face.box.height > 20
    assert face.box.x + face.box.width <= rgb.shape[1] and face.box.y + face.box.height <= rgb.shape[0]


def test_finds_nothing_without_a_face(detector) -> None:
    assert detector.detect(no_face_image()) == []
    assert detector.detect(np.zeros((300, 300, 3), np.uint8)) == []


def test_two_faces_left_to_right(detector, single_face_photos) -> None:
    first, second = single_face_photos[0], single_face_photos[1]
    faces = detector.detect(side_by_side(first.rgb, second.rgb))
    assert len(faces) == 2
    assert faces[0].box.x < faces[1].box.x


def test_boxes_are_in_original_pixels_when_downscaled(detector, one_face) -> None:
    rgb = one_face.rgb
    big = cv2.resize(rgb, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    (small_face,) = detector.detect(rgb)
    (big_face,) = detector.detect(big)
    assert big_face.box.x == pytest.approx(3 * small_face.box.x, rel=0.15, abs=12)
    assert big_face.box.width == pytest.approx(3 * small_face.box.width, rel=0.15)


def test_blazeface_finds_a_face_in_every_held_out_photo(held_out) -> None:
    detector = create_detector("blazeface")
    missed = [p.path.name for p in held_out if not detector.detect(p.rgb)]
    assert missed == []


def test_blazeface_gives_eyes_nose_and_mouth_inside_the_box(one_face) -> None:
    (face,) = create_detector("blazeface").detect(one_face.rgb)
    assert set(face.landmarks) == {"left_eye", "right_eye", "nose", "mouth"}
    for x, y in face.landmarks.values():
        assert face.box.x <= x <= face.box.x + face.box.width
        assert face.box.y <= y <= face.box.y + face.box.height
    assert face.left_eye[0] < face.right_eye[0]
    eyes_y = (face.left_eye[1] + face.right_eye[1]) / 2
    assert eyes_y < face.landmarks["nose"][1] < face.landmarks["mouth"][1]


def test_a_landmark_must_have_a_known_name() -> None:
    with pytest.raises(ValueError, match="unknown landmark"):
        Detection(Box(0, 0, 10, 10), landmarks={"chin": (5.0, 9.0)})


def test_unknown_detector_name() -> None:
    with pytest.raises(ValueError, match="unknown face detector"):
        create_detector("nope")


def test_crop_is_clipped_to_the_image() -> None:
    rgb = np.zeros((100, 100, 3), np.uint8)
    crop = crop_face(rgb, Detection(Box(80, 80, 40, 40)), margin=0.25)
    assert crop.shape == (30, 30, 3)  # 80-10 .. 100, clipped at the edge


def test_align_levels_the_eyes() -> None:
    """Two dots on a tilted line end up on one row after alignment."""
    rgb = np.zeros((200, 200, 3), np.uint8)
    left, right = (70, 80), (130, 120)
    cv2.circle(rgb, left, 4, (255, 255, 255), -1)
    cv2.circle(rgb, right, 4, (255, 255, 255), -1)
    face = Detection(Box(50, 50, 100, 100), landmarks={"left_eye": left, "right_eye": right})
    aligned = align_face(rgb, face, size=100, margin=0.0)
    assert aligned.shape == (100, 100, 3)
    ys, _ = np.nonzero(aligned[..., 0] > 128)
    assert ys.max() - ys.min() <= 10
