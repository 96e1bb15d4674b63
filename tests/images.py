"""Images made for tests: encodings of real photos, composites, synthetic and hostile files."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
from PIL import Image

#: The start of a multipart body with one file part (boundary ``abc``); file bytes follow.
MULTIPART_HEAD = (
    b'--abc\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
    b"Content-Type: image/jpeg\r\n\r\n"
)


def encode(rgb: np.ndarray, fmt: str = "JPEG", **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def side_by_side(*images: np.ndarray, height: int = 480) -> np.ndarray:
    """Photos resized to one height and placed left to right, as one image."""
    resized = [cv2.resize(im, (round(im.shape[1] * height / im.shape[0]), height)) for im in images]
    return np.hstack(resized)


def no_face_image(width: int = 640, height: int = 480) -> np.ndarray:
    """A gradient with shapes and text: structure for a detector to chew on, but no face."""
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    image = np.stack(
        [
            np.broadcast_to(x, (height, width)),
            np.broadcast_to(y, (height, width)),
            np.full((height, width), 128.0),
        ],
        axis=-1,
    ).astype(np.uint8)
    cv2.rectangle(image, (60, 60), (220, 200), (20, 160, 40), -1)
    cv2.circle(image, (420, 240), 90, (200, 30, 30), -1)
    cv2.putText(image, "no faces here", (40, 420), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (255, 255, 255), 3)
    return image


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A tiny, valid-looking PNG whose header declares ``width`` x ``height`` pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    row = b"\x00" + b"\x00" * (3 * 16)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * 16))
        + chunk(b"IEND", b"")
    )


def gif_image(rgb: np.ndarray) -> bytes:
    """A valid single-frame GIF (palette) of ``rgb``."""
    return encode(rgb, "GIF")


def grayscale_jpeg(rgb: np.ndarray) -> bytes:
    """An 8-bit, one-channel (mode L) JPEG of ``rgb``."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).convert("L").save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def png_16bit(rgb: np.ndarray) -> bytes:
    """A 16-bit grayscale PNG of ``rgb``, using the whole 0..65535 range."""
    gray = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.uint16) * 257
    buffer = io.BytesIO()
    Image.fromarray(gray).save(buffer, format="PNG")
    return buffer.getvalue()


def cmyk_jpeg(rgb: np.ndarray) -> bytes:
    """A four-channel CMYK JPEG of ``rgb`` (as print workflows and some cameras write them)."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def rgba_png(rgb: np.ndarray, alpha: int = 200) -> bytes:
    """An RGBA PNG of ``rgb``: opaque in the middle, ``alpha`` around a 10% border."""
    height, width = rgb.shape[:2]
    a = np.full((height, width), alpha, dtype=np.uint8)
    a[height // 10 : height - height // 10, width // 10 : width - width // 10] = 255
    return encode(np.dstack([rgb, a]), "PNG")


#: EXIF tag 0x0112 (Orientation); 6 means "rotate 90° clockwise to view upright".
EXIF_ORIENTATION = 0x0112


def exif_rotated_jpeg(rgb: np.ndarray) -> bytes:
    """A JPEG whose pixels are ``rgb`` turned 90° counter-clockwise, tagged Orientation=6.

    A viewer that honours EXIF shows ``rgb`` upright, as a phone shows a portrait
    it stored sideways.
    """
    image = Image.fromarray(np.ascontiguousarray(np.rot90(rgb, k=1)))
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def crowd(faces: list[np.ndarray], heights: list[int], gap: int = 40) -> np.ndarray:
    """One-face photos resized to ``heights`` and tiled left to right on grey: a crowd of known sizes."""
    resized = [
        cv2.resize(im, (round(im.shape[1] * h / im.shape[0]), h))
        for im, h in zip(faces, heights, strict=True)
    ]
    canvas_h = max(heights) + 2 * gap
    canvas_w = sum(im.shape[1] for im in resized) + gap * (len(resized) + 1)
    canvas = np.full((canvas_h, canvas_w, 3), 128, dtype=np.uint8)
    x = gap
    for im in resized:
        canvas[gap : gap + im.shape[0], x : x + im.shape[1]] = im
        x += im.shape[1] + gap
    return canvas


def pdf_file() -> bytes:
    """A minimal one-page PDF."""
    return (
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
        b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
        b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 72 72]>>endobj\n"
        b"trailer<</Root 1 0 R>>\n%%EOF\n"
    )


def svg_file() -> bytes:
    """An SVG drawing: an image to a browser, text to this service."""
    return (
        b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="640" height="480">'
        b'<circle cx="320" cy="240" r="100" fill="tan"/></svg>\n'
    )
