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
