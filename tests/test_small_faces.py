"""Small, distant and sideways faces: tiles, the thorough search, the quality flag, over HTTP too."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.artifact.manifest import load_manifest
from app.model.recognizer import LOW_QUALITY_HEIGHT
from app.pipeline.decode import decode_image
from app.pipeline.detect import Box, Detection, create_detector
from app.pipeline.detect.blazeface import WHOLE_PHOTO_ONLY
from app.pipeline.detect.search import novel, tile_grid, unrotate
from tests.conftest import ARTIFACTS, LabelledPhoto
from tests.images import encode


@pytest.fixture(scope="module")
def detector():
    return create_detector("blazeface")


def group_photo(
    photos: list[LabelledPhoto], heights: list[int], size: tuple[int, int] = (1280, 960)
) -> tuple[np.ndarray, list[Box]]:
    """Whole photos scaled so each face is the given height, spread over a grey canvas; the faces' boxes."""
    reference = create_detector("blazeface", WHOLE_PHOTO_ONLY)
    width, height = size
    canvas = np.full((height, width, 3), 128, np.uint8)
    boxes = []
    x = 20
    for photo, face_height in zip(photos, heights, strict=True):
        rgb = photo.rgb
        (face,) = reference.detect(rgb)
        scale = face_height / face.box.height
        small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        y = (height - small.shape[0]) // 2
        canvas[y : y + small.shape[0], x : x + small.shape[1]] = small
        boxes.append(face.box.scaled(scale).moved(x, y))
        x += small.shape[1] + 20
    assert x <= width, "the photos do not fit on the canvas"
    return canvas, boxes


def found(truth: list[Box], faces: list[Detection]) -> int:
    """How many true faces have a detection centred on them."""

    def on(face: Detection, box: Box) -> bool:
        fx, fy = face.box.x + face.box.width / 2, face.box.y + face.box.height / 2
        return (
            abs(fx - box.x - box.width / 2) < box.height / 2
            and abs(fy - box.y - box.height / 2) < box.height / 2
        )

    return sum(any(on(face, box) for face in faces) for box in truth)


def test_tiles_cover_the_image_and_overlap() -> None:
    tiles = tile_grid(1000, 700, side=400, overlap=80)
    covered = np.zeros((700, 1000), bool)
    for x, y, w, h in tiles:
        assert (w, h) == (400, 400) and x + w <= 1000 and y + h <= 700
        covered[y : y + h, x : x + w] = True
    assert covered.all()
    xs = sorted({x for x, *_ in tiles})
    assert all(b - a <= 400 - 80 for a, b in itertools.pairwise(xs))
    assert tile_grid(300, 200, side=400, overlap=80) == [(0, 0, 300, 200)]


def test_a_tile_finding_a_known_face_again_adds_nothing() -> None:
    whole = [Detection(Box(100, 100, 80, 80), 0.9)]
    half_face = Detection(Box(100, 100, 40, 80), 0.7)  # a tile's edge cut the face
    elsewhere = Detection(Box(400, 100, 20, 20), 0.6)
    assert novel(whole, [half_face, elsewhere], iou=0.3) == [elsewhere]


def test_one_small_face_boxed_apart_by_two_tiles_is_one_face() -> None:
    first, second = Detection(Box(122, 464, 20, 20), 0.29), Detection(Box(130, 458, 16, 16), 0.34)
    assert novel([], [first, second], iou=0.3) == [second]


def test_a_rejected_candidate_does_not_hide_a_small_face_inside_it() -> None:
    """Candidates are confirmed best first; a large false box around a small face must not
    take the small face's candidate with it, while a second box of the rejected place is skipped."""
    large = Detection(Box(100, 100, 60, 60), 0.8)  # rejected: a texture
    same_place = Detection(Box(102, 101, 58, 60), 0.5)  # the same texture, seen by a second tile
    small = Detection(Box(120, 120, 16, 16), 0.3)  # a real small face inside the large box
    asked: list[Detection] = []

    def confirm(face: Detection) -> bool:
        asked.append(face)
        return face is small

    assert novel([], [small, same_place, large], iou=0.3, confirm=confirm) == [small]
    assert asked == [large, small]
    assert novel([], [small, large], iou=0.3) == [large]  # without a check the large box hides it


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_a_face_found_in_a_turned_image_maps_back(turns: int) -> None:
    image = np.zeros((100, 200), np.uint8)
    image[10, 30] = 1
    row, col = np.argwhere(np.rot90(image, turns) == 1)[0]
    eye = (col + 0.5, row + 0.5)
    face = unrotate(Detection(Box(int(col), int(row), 1, 1), 1.0, {"left_eye": eye}), turns, 200, 100)
    assert face.left_eye == pytest.approx((30.5, 10.5))
    assert (face.box.x, face.box.y) == (30, 10)


def test_tiles_find_faces_the_whole_photo_pass_misses(single_face_photos, detector) -> None:
    """Five faces 40 px high in a 1280 x 960 photo: about 6 px at the whole-photo pass's input."""
    canvas, truth = group_photo(single_face_photos[:5], [40] * 5)
    before = found(truth, create_detector("blazeface", WHOLE_PHOTO_ONLY).detect(canvas))
    assert before < len(truth)
    assert found(truth, detector.detect(canvas)) == len(truth)


def test_a_tile_face_is_kept_only_if_the_wider_crops_agree(single_face_photos, detector) -> None:
    """Every tile face must also score ``tile_agree_threshold`` on a wider crop (6 or 8 faces):
    the real 40 px faces do; none could score above 1."""
    canvas, truth = group_photo(single_face_photos[:5], [40] * 5)
    never = create_detector("blazeface", {"tile_agree_threshold": 1.01})
    assert found(truth, never.detect(canvas)) < found(truth, detector.detect(canvas)) == len(truth)


def test_low_scoring_tile_faces_are_kept_when_the_checker_agrees(single_face_photos, detector) -> None:
    """Eight faces 16 px high, blurred and in a JPEG of quality 50: tiles score most under 0.5."""
    canvas, truth = group_photo(single_face_photos[:8], [16] * 8, size=(640, 480))
    canvas = decode_image(encode(cv2.GaussianBlur(canvas, (0, 0), 1.0), quality=50))
    strict = create_detector("blazeface", {"tile_threshold": 0.5})
    default = found(truth, detector.detect(canvas))
    assert default >= found(truth, strict.detect(canvas)) + 2
    assert default >= 4


def test_tiles_are_sized_for_tile_face_once_a_photo_needs_them(detector) -> None:
    """Up to 427 px (a 20 px face at 12 px of the back model's 256): no tiles. Longer photos get
    427 px tiles, or tiles sized for ``tile_face`` (16 px: 341 px tiles) when a manifest sets it;
    the thorough search's own size stays."""
    assert (detector.min_face, detector.tile_face) == (20, 0)
    assert detector._tile_side(427, detector.min_face) == 0
    assert detector._tile_side(428, detector.min_face) == 427
    assert detector._tile_side(1024, detector.thorough_min_face) == 213
    finer = create_detector("blazeface", {"tile_face": 16})
    assert finer._tile_side(428, finer.min_face) == 341
    assert finer._tile_side(1024, finer.thorough_min_face) == 213


def test_a_photo_one_min_face_tile_wide_is_not_tiled(one_face, detector) -> None:
    """The common portrait (up to 427 px for 20 px faces) gets the whole-photo pass alone,
    even where tiles, when a photo needs them, are smaller (341 px for 16 px faces)."""
    rgb = one_face.rgb
    scale = 420 / max(rgb.shape[:2])
    portrait = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    assert detector._tiles(detector._nets, portrait, detector.min_face) == []
    scale = 500 / max(rgb.shape[:2])
    larger = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    assert detector._tiles(detector._nets, larger, detector.min_face)  # its face, seen by a tile


def test_thorough_finds_small_faces_too(single_face_photos, detector) -> None:
    """16 px faces: about 13 px once the photo is brought to 1024 px, under the default's 20."""
    canvas, truth = group_photo(single_face_photos[:8], [16] * 8)
    default = found(truth, detector.detect(canvas))
    thorough = found(truth, detector.detect(canvas, thorough=True))
    assert thorough >= default
    assert thorough >= len(truth) // 2


def test_a_sideways_photo_without_exif_is_found(one_face, detector) -> None:
    rgb = one_face.rgb
    (upright,) = detector.detect(rgb)
    (turned,) = detector.detect(np.ascontiguousarray(np.rot90(rgb, 1)))  # counter-clockwise
    height, width = rgb.shape[:2]
    assert found([upright.box], [unrotate(turned, 1, width, height)]) == 1
    # The eyes are stacked vertically in the turned image, so aligning on them turns the face upright.
    (lx, ly), (rx, ry) = turned.left_eye, turned.right_eye
    assert abs(ly - ry) > abs(lx - rx)


def test_quality_flags_small_faces_over_http(client: TestClient, single_face_photos) -> None:
    canvas, _truth = group_photo(single_face_photos[:2], [80, 24], size=(640, 480))
    response = client.post("/v1/classify", files={"file": ("group.jpg", encode(canvas, quality=95))})
    assert response.status_code == 200, response.text
    faces = response.json()["faces"]
    assert len(faces) == 2
    large, small = sorted(faces, key=lambda f: -f["box"]["height"])
    assert large["quality"] == "good" and large["box"]["height"] >= LOW_QUALITY_HEIGHT
    assert small["quality"] == "low" and small["box"]["height"] < LOW_QUALITY_HEIGHT


def test_thorough_parameter_over_http(client: TestClient, single_face_photos) -> None:
    """The parameter reaches the detector: each search answers over HTTP what the served model's
    detector finds in-process (bench/detection.py compares what the two find over many photos)."""
    served = client.get("/v1/models").json()
    manifest = load_manifest(ARTIFACTS / served["backend"] / served["version"])
    detector = create_detector(manifest.detector.name, manifest.detector.params)
    canvas, _truth = group_photo(single_face_photos[:8], [16] * 8)
    data = encode(canvas, quality=95)
    rgb = decode_image(data)
    default = client.post("/v1/classify", files={"file": ("g.jpg", data)}).json()["faces"]
    thorough = client.post("/v1/classify?thorough=true", files={"file": ("g.jpg", data)})
    assert thorough.status_code == 200
    assert len(default) == len(detector.detect(rgb)) >= 1
    assert len(thorough.json()["faces"]) == len(detector.detect(rgb, thorough=True)) >= 1
    bad = client.post("/v1/classify?thorough=maybe", files={"file": ("g.jpg", data)})
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"


def test_haar_thorough_search_tries_more_sizes(one_face) -> None:
    """Haar's slower search steps its scale pyramid by 1.1, not 1.3: the portrait is still one face."""
    haar = create_detector("haar")
    (face,) = haar.detect(one_face.rgb, thorough=True)
    (default,) = haar.detect(one_face.rgb)
    assert found([default.box], [face]) == 1
