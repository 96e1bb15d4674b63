"""features: the seed's raw + wavelet vector, and the registry."""

from __future__ import annotations

import numpy as np
import pytest

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
