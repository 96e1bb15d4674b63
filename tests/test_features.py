"""features: the seed's raw + wavelet vector, and the registry."""

from __future__ import annotations

import numpy as np
import pytest

from app.pipeline.align import arcface_template, warp_to_template
from app.pipeline.crop import align_face
from app.pipeline.detect import Box, Detection, create_detector
from app.pipeline.features import create_extractor


def test_wavelet_features_shape_and_determinism(one_face) -> None:
    extractor = create_extractor("wavelet")
    rgb = one_face.rgb
    crop = rgb[: rgb.shape[0] // 2, : rgb.shape[1] // 2]
    features = extractor.extract([crop, crop])
    assert features.shape == (2, 4096) and features.dtype == np.float32
    assert np.array_equal(features[0], features[1])


def test_wavelet_image_keeps_edges_not_flat_areas() -> None:
    flat = np.full((64, 64, 3), 128, np.uint8)
    edged = flat.copy()
    edged[:, 21:] = 255  # off the dyadic grid, so detail coefficients carry it
    extractor = create_extractor("wavelet")
    assert extractor.wavelet_image(flat).max() == 0
    assert extractor.wavelet_image(edged).max() > 0


def test_no_crops_gives_no_rows() -> None:
    assert create_extractor("wavelet").extract([]).shape == (0, 4096)


def test_unknown_extractor() -> None:
    with pytest.raises(ValueError, match="unknown feature extractor"):
        create_extractor("nope")


@pytest.fixture(scope="module")
def facenet():
    return create_extractor("facenet")


def embed_largest(extractor, photo) -> np.ndarray:
    rgb = photo.rgb
    face = max(create_detector("blazeface").detect(rgb), key=lambda f: f.box.area)
    return extractor.extract([extractor.crop(rgb, face)])[0]


def test_facenet_embeddings_are_unit_vectors_and_batch_safe(facenet, one_face) -> None:
    rgb = one_face.rgb
    crops = [rgb[:200, :200], rgb[-200:, -200:], rgb]
    crops = [facenet.crop(c, _whole(c)) for c in crops]
    batched = facenet.extract(crops)
    one_by_one = np.vstack([facenet.extract([c]) for c in crops])
    assert batched.shape == (3, 512)
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    assert np.allclose(batched, one_by_one, atol=1e-4)


def test_facenet_puts_one_person_closer_than_another(facenet, single_face_photos) -> None:
    by_person: dict[str, list] = {}
    for photo in single_face_photos:
        by_person.setdefault(photo.label, []).append(photo)
    a, b = [person for person, photos in by_person.items() if len(photos) >= 2][:2]
    a1, a2, b1 = (embed_largest(facenet, x) for x in (by_person[a][0], by_person[a][1], by_person[b][0]))
    assert float(a1 @ a2) > float(a1 @ b1)


def _whole(image):
    return Detection(Box(0, 0, image.shape[1], image.shape[0]))


def test_pixel_features_are_the_resized_crop() -> None:
    extractor = create_extractor("pixels", {"size": 8})
    crop = np.zeros((40, 30, 3), np.uint8)
    crop[..., 0] = 200  # pure red
    rows = extractor.extract([crop, crop])
    assert extractor.feature_shape == (8, 8, 3)
    assert rows.shape == (2, 8 * 8 * 3) and rows.dtype == np.float32
    image = rows[0].reshape(extractor.feature_shape)
    assert (image[..., 0] == 200).all() and (image[..., 1:] == 0).all()
    assert extractor.extract([]).shape == (0, 8 * 8 * 3)


def test_facenet_warps_faces_onto_the_arcface_template_and_says_so(facenet, one_face) -> None:
    """A new model's FaceNet names its crop in its params, so in the manifest; the box crop stays."""
    rgb = one_face.rgb
    face = max(create_detector("blazeface").detect(rgb), key=lambda f: f.box.area)
    assert facenet.params == {"margin": 0.2, "crop": "arcface"}
    assert facenet.template == arcface_template(160)
    np.testing.assert_array_equal(facenet.crop(rgb, face), warp_to_template(rgb, face, arcface_template(160)))
    boxed = create_extractor("facenet", {"margin": 0.2, "crop": "box"})
    assert boxed.template is None
    np.testing.assert_array_equal(boxed.crop(rgb, face), align_face(rgb, face, 160, 0.2))
    with pytest.raises(ValueError, match="unknown crop 'dlib' for facenet"):
        create_extractor("facenet", {"crop": "dlib"})
