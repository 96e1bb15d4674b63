"""Decode uploaded bytes into one colour convention: RGB, uint8, H x W x 3.

Pillow reads the header first, so the pixel limit is enforced before any pixel
is decoded (a 30000 x 30000 PNG costs a few bytes to send and gigabytes to open).
EXIF orientation is applied, so boxes are reported in the image as a person sees it.

``decode_photo`` lets a large JPEG be decoded at 1/2, 1/4 or 1/8 of its size in
the DCT itself (Pillow's draft mode), never below the detector's working size:
a 4000 px photo then costs about what a 2000 px one does, and the detector would
have shrunk it anyway.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from app.pipeline.errors import ImageTooLarge, UndecodableImage, UnsupportedImageType

#: Pillow format names accepted; anything else Pillow can read (PDF, EPS, ICO...) is refused.
SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF", "MPO"})

#: Default pixel limit (40 megapixels).
DEFAULT_MAX_PIXELS = 40_000_000

# The declared size is checked against MAX_PIXELS before any decoding (see _open), so
# Pillow's own, fixed bomb limit (89 M pixels) would only stop a larger configured limit.
Image.MAX_IMAGE_PIXELS = None


#: EXIF orientations that turn the stored image by 90 degrees.
_QUARTER_TURNS = frozenset({5, 6, 7, 8})


@dataclass(frozen=True)
class DecodedPhoto:
    """The decoded pixels and how they map onto the uploaded image."""

    rgb: np.ndarray
    #: The uploaded image's upright size, which boxes are reported in.
    width: int
    height: int

    @property
    def scale(self) -> float:
        """Uploaded pixels per decoded pixel: 1.0 unless decoded at reduced size."""
        return self.width / self.rgb.shape[1]


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Return the image in ``data`` as an RGB uint8 array, upright per its EXIF tag, at full size."""
    return decode_photo(data, max_pixels).rgb


def decode_photo(
    data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int | None = None
) -> DecodedPhoto:
    """Decode ``data``; a JPEG may come out smaller, but with its long side at least ``min_side``."""
    image = _open(data, max_pixels)
    width, height = image.size
    try:
        if min_side is not None and image.format == "JPEG" and max(width, height) > 2 * min_side:
            factor = min_side / max(width, height)
            image.draft("RGB", (max(1, round(width * factor)), max(1, round(height * factor))))
        if image.getexif().get(0x0112) in _QUARTER_TURNS:
            width, height = height, width
        image = ImageOps.exif_transpose(image)
        return DecodedPhoto(_to_rgb(image), width, height)
    except (OSError, ValueError, SyntaxError) as exc:
        raise UndecodableImage(f"the image data is corrupt or truncated: {exc}") from exc


def _open(data: bytes, max_pixels: int) -> Image.Image:
    """Open lazily (header only) and enforce the format and pixel limits."""
    if not data:
        raise UndecodableImage("the upload is empty")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        raise UnsupportedImageType("not a supported image format (JPEG, PNG, WebP, BMP, TIFF, GIF)") from exc
    except OSError as exc:
        raise UndecodableImage(f"the image header is corrupt: {exc}") from exc
    if image.format not in SUPPORTED_FORMATS:
        raise UnsupportedImageType(f"image format {image.format} is not supported")
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLarge(f"image is {width}x{height} pixels; the limit is {max_pixels} pixels")
    return image


def _to_rgb(image: Image.Image) -> np.ndarray:
    """Convert any Pillow mode (L, P, RGBA, CMYK, 16-bit...) to RGB uint8."""
    if image.mode in {"I;16", "I;16B", "I;16L", "I"}:
        # 16/32-bit grayscale: Pillow's convert() clips rather than rescales.
        wide = np.asarray(image, dtype=np.float64)
        peak = wide.max() or 1.0
        gray = (wide * (255.0 / peak)).astype(np.uint8)
        return np.ascontiguousarray(np.stack([gray] * 3, axis=-1))
    if image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info):
        # Composite transparent pixels onto white rather than the undefined colour behind them.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))
