"""decode: every real-world image flavour becomes RGB uint8, upright; bad input raises clear errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from app.pipeline.decode import decode_image, decode_photo
from app.pipeline.errors import ImageTooLarge, UndecodableImage, UnsupportedImageType
from tests.images import encode, png_bomb


def pil_bytes(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def test_real_photo(one_face) -> None:
    rgb = decode_image(one_face.path.read_bytes())
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3


def test_channel_order_is_rgb() -> None:
    red = np.zeros((8, 8, 3), np.uint8)
    red[..., 0] = 255
    assert decode_image(encode(red, "PNG"))[0, 0].tolist() == [255, 0, 0]


def test_exif_orientation_is_applied() -> None:
    wide = Image.new("RGB", (40, 20), (10, 200, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways; display rotated 90 degrees
    rgb = decode_image(pil_bytes(wide, "JPEG", exif=exif.tobytes()))
    assert rgb.shape[:2] == (40, 20)


@pytest.mark.parametrize("mode", ["L", "RGBA", "LA", "CMYK", "P", "I;16", "1"])
def test_every_mode_becomes_rgb(mode: str) -> None:
    fmt = "JPEG" if mode == "CMYK" else ("TIFF" if mode == "I;16" else "PNG")
    image = Image.new(mode, (16, 12))
    rgb = decode_image(pil_bytes(image, fmt))
    assert rgb.shape == (12, 16, 3) and rgb.dtype == np.uint8


def test_sixteen_bit_is_rescaled_not_clipped() -> None:
    wide = np.full((4, 4), 30000, np.uint16)
    wide[0, 0] = 60000
    rgb = decode_image(pil_bytes(Image.fromarray(wide), "PNG"))
    assert 100 < rgb[1, 1, 0] < 150


def test_transparent_pixels_become_white() -> None:
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert decode_image(pil_bytes(rgba, "PNG"))[0, 0].tolist() == [255, 255, 255]


def test_one_pixel_image() -> None:
    assert decode_image(encode(np.zeros((1, 1, 3), np.uint8), "PNG")).shape == (1, 1, 3)


def test_errors() -> None:
    with pytest.raises(UndecodableImage):
        decode_image(b"")
    with pytest.raises(UnsupportedImageType):
        decode_image(b"hello world")
    with pytest.raises(UnsupportedImageType):
        decode_image(b"%PDF-1.4\n%%EOF")
    with pytest.raises(ImageTooLarge):
        decode_image(png_bomb())
    photo = encode(np.full((64, 64, 3), 90, np.uint8))
    with pytest.raises(UndecodableImage):
        decode_image(photo[: len(photo) // 2])


def test_large_jpeg_is_decoded_smaller_but_keeps_its_size() -> None:
    big = np.zeros((1500, 4000, 3), np.uint8)
    big[:, :2000] = 200
    photo = decode_photo(encode(big), min_side=1024)
    assert (photo.width, photo.height) == (4000, 1500)
    assert photo.rgb.shape[:2] == (750, 2000)  # the DCT's 1/2 scale: still >= 1024 on the long side
    assert photo.scale == 2.0
    assert decode_photo(encode(big, "PNG"), min_side=1024).scale == 1.0  # only JPEG can do this


def test_reduced_decode_of_a_rotated_jpeg_reports_the_upright_size() -> None:
    wide = Image.new("RGB", (4000, 2400), (10, 200, 10))
    exif = Image.Exif()
    exif[0x0112] = 6
    photo = decode_photo(pil_bytes(wide, "JPEG", exif=exif.tobytes()), min_side=1024)
    assert (photo.width, photo.height) == (2400, 4000)
    assert photo.rgb.shape[:2] == (2000, 1200)


def test_the_pixel_limit_is_ours_not_pillows() -> None:
    """Pillow's fixed bomb limit (89 M pixels) must not override a larger configured MAX_PIXELS."""
    header_only = png_bomb(10000, 10000)  # 100 M pixels declared
    with pytest.raises(ImageTooLarge, match="limit is 40000000"):
        decode_image(header_only)
    with pytest.raises(UndecodableImage):  # allowed by the limit; then fails on its missing pixels
        decode_image(header_only, max_pixels=200_000_000)
