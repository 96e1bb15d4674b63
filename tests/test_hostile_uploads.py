"""Hostile uploads: everything a stranger can send to /v1/classify, through the real app.

Every case is answered with a 4xx problem+json or, where the image is valid, a 200;
never a 5xx, and the service is still ready afterwards. The same list, sent again
and again to a real uvicorn process, must not make its memory grow.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.api.problems import PROBLEM_JSON
from tests.conftest import LabelledPhoto, make_client
from tests.images import (
    cmyk_jpeg,
    crowd,
    encode,
    exif_rotated_jpeg,
    gif_image,
    grayscale_jpeg,
    pdf_file,
    png_16bit,
    png_bomb,
    rgba_png,
    svg_file,
)
from tests.server import running_server

URL = "/v1/classify"
#: Over the default 10 MB upload limit, as the issue asks.
HUGE = 25 * 1024 * 1024


@dataclass(frozen=True)
class Photo:
    """The real one-face photo every image case is made from."""

    data: bytes
    rgb: np.ndarray


def _file(data: bytes, name: str = "upload.jpg", field: str = "file") -> dict[str, Any]:
    return {"files": {field: (name, data, "application/octet-stream")}}


@dataclass(frozen=True)
class Case:
    id: str
    status: int
    #: The keyword arguments of ``post()`` (httpx and TestClient alike) for this upload.
    request: Callable[[Photo], dict[str, Any]]
    #: For a 200: how many faces the answer must hold (None: do not check).
    faces: int | None = None


CASES = [
    # Nothing, or nothing useful.
    Case("empty-body", 422, lambda p: {}),
    Case(
        "empty-multipart",
        422,
        lambda p: {"content": b"", "headers": {"content-type": "multipart/form-data; boundary=abc"}},
    ),
    Case(
        "garbled-multipart",
        400,
        lambda p: {"content": b"garbage", "headers": {"content-type": "multipart/form-data; boundary=abc"}},
    ),
    Case("empty-file", 400, lambda p: _file(b"")),
    Case("random-bytes", 415, lambda p: _file(np.random.default_rng(7).bytes(50_000))),
    Case("truncated-jpeg", 400, lambda p: _file(p.data[: len(p.data) // 2])),
    Case("text-named-jpg", 415, lambda p: _file(b"this is a text file, not a photo\n" * 40, "notes.jpg")),
    # Other formats: a GIF is an image the service takes; SVG and PDF are not.
    Case("svg", 415, lambda p: _file(svg_file(), "drawing.svg")),
    Case("gif", 200, lambda p: _file(gif_image(p.rgb), "photo.gif"), faces=1),
    Case("pdf", 415, lambda p: _file(pdf_file(), "doc.pdf")),
    # Too big: in pixels (declared by a tiny header) and in bytes.
    Case("png-30000x30000", 413, lambda p: _file(png_bomb(30000, 30000), "bomb.png")),
    Case("25mb-upload", 413, lambda p: _file(np.random.default_rng(1).bytes(HUGE), "huge.jpg")),
    # Valid but unusual images.
    Case("1x1", 200, lambda p: _file(encode(np.zeros((1, 1, 3), np.uint8), "PNG"), "dot.png"), faces=0),
    Case(
        "5000x1", 200, lambda p: _file(encode(np.zeros((1, 5000, 3), np.uint8), "PNG"), "line.png"), faces=0
    ),
    Case(
        "1x5000", 200, lambda p: _file(encode(np.zeros((5000, 1, 3), np.uint8), "PNG"), "pole.png"), faces=0
    ),
    Case("grayscale", 200, lambda p: _file(grayscale_jpeg(p.rgb)), faces=1),
    Case("16-bit-png", 200, lambda p: _file(png_16bit(p.rgb), "deep.png"), faces=1),
    Case("cmyk-jpeg", 200, lambda p: _file(cmyk_jpeg(p.rgb)), faces=1),
    Case("rgba-png", 200, lambda p: _file(rgba_png(p.rgb), "alpha.png"), faces=1),
    Case("exif-rotated", 200, lambda p: _file(exif_rotated_jpeg(p.rgb), "portrait.jpg"), faces=1),
    # The wrong form.
    Case("missing-field", 422, lambda p: {"data": {"comment": "no file here"}}),
    Case("wrong-field-name", 422, lambda p: _file(p.data, field="image")),
    Case("file-as-text-field", 422, lambda p: {"data": {"file": "not a file"}}),
    Case(
        "two-files",
        422,
        lambda p: {
            "files": [("file", ("a.jpg", p.data, "image/jpeg")), ("file", ("b.jpg", p.data, "image/jpeg"))]
        },
    ),
    Case("not-multipart", 422, lambda p: {"content": p.data, "headers": {"content-type": "image/jpeg"}}),
]


@pytest.fixture(scope="module")
def photo(one_face: LabelledPhoto) -> Photo:
    return Photo(one_face.path.read_bytes(), one_face.rgb)


def check_answer(response: httpx.Response, case: Case) -> None:
    assert response.status_code < 500, f"{case.id}: {response.status_code} {response.text[:300]}"
    assert response.status_code == case.status, f"{case.id}: {response.status_code} {response.text[:300]}"
    assert "Traceback" not in response.text
    if case.status == 200:
        assert response.headers["content-type"] == "application/json"
        if case.faces is not None:
            assert len(response.json()["faces"]) == case.faces, response.text
    else:
        assert response.headers["content-type"] == PROBLEM_JSON
        body = response.json()
        assert body["status"] == case.status and body["title"] and body["detail"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_hostile_upload(client: TestClient, photo: Photo, case: Case) -> None:
    check_answer(client.post(URL, **case.request(photo)), case)
    assert client.get("/readyz").status_code == 200


def test_exif_rotated_box_is_in_upright_coordinates(client: TestClient, photo: Photo) -> None:
    """The photo stored sideways with an EXIF turn: boxes are where a person sees the face."""
    original = client.post(URL, **_file(photo.data)).json()
    rotated = client.post(URL, **_file(exif_rotated_jpeg(photo.rgb))).json()
    height, width = photo.rgb.shape[:2]
    assert height != width  # else a missed rotation could not show in the size
    assert original["image"] == rotated["image"] == {"width": width, "height": height}
    (expected,) = original["faces"]
    (got,) = rotated["faces"]
    for key in ("x", "y", "width", "height"):
        assert abs(got["box"][key] - expected["box"][key]) <= 4, (key, got["box"], expected["box"])
    assert got["label"] == expected["label"]


@pytest.fixture(scope="module")
def capped_client() -> Iterator[TestClient]:
    yield from make_client(max_faces=3)


def test_crowd_keeps_the_largest_faces(
    client: TestClient, capped_client: TestClient, single_face_photos: list[LabelledPhoto]
) -> None:
    """Five people, their faces of clearly different sizes; MAX_FACES=3 keeps the three largest, flagged."""
    faces = []
    for person in single_face_photos[:5]:
        (face,) = client.post(URL, **_file(person.path.read_bytes())).json()["faces"]
        x, y, w, h = face["box"].values()
        m = int(w * 0.4)  # the face with a margin, so small tiles still hold big faces
        faces.append(person.rgb[max(0, y - m) : y + h + m, max(0, x - m) : x + w + m])
    # Under 1024 px wide: the detector would scale a wider image down and lose the small faces.
    data = encode(crowd(faces, heights=[160, 250, 130, 220, 190], gap=10), "PNG")

    everyone = client.post(URL, **_file(data, "crowd.png")).json()
    assert len(everyone["faces"]) > 3
    assert everyone["faces_truncated"] is False

    capped = capped_client.post(URL, **_file(data, "crowd.png")).json()
    assert capped["faces_truncated"] is True
    assert len(capped["faces"]) == 3

    def area(face: dict) -> int:
        return face["box"]["width"] * face["box"]["height"]

    largest = sorted(everyone["faces"], key=area, reverse=True)[:3]
    assert sorted(f["box"]["x"] for f in largest) == [f["box"]["x"] for f in capped["faces"]]
    assert {tuple(f["box"].values()) for f in largest} == {tuple(f["box"].values()) for f in capped["faces"]}


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc/<pid>/status (VmRSS, in kB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


ROUNDS = 20
WARM_UP_ROUNDS = 3
#: Growth allowed between the end of warm-up and the end of the run.
MAX_GROWTH = 150 * 1024 * 1024


@pytest.mark.slow
def test_memory_stays_bounded_under_hostile_uploads(tmp_path: Path, photo: Photo) -> None:
    """The whole list, 20 times, to a real uvicorn process: its RSS levels off."""
    requests = [(case, case.request(photo)) for case in CASES]
    with (
        running_server(tmp_path / "server.log", LOG_LEVEL="WARNING") as base,
        httpx.Client(base_url=base, timeout=60) as http,
    ):
        samples = [rss_bytes(base.pid)]
        for _ in range(ROUNDS):
            for case, kwargs in requests:
                check_answer(http.post(URL, **kwargs), case)
            assert http.get("/readyz").status_code == 200
            samples.append(rss_bytes(base.pid))
        time.sleep(0.5)
        samples.append(rss_bytes(base.pid))
    mb = [round(s / 2**20) for s in samples]
    print("server RSS, MB after each round:", mb)
    growth = samples[-1] - samples[WARM_UP_ROUNDS]
    assert growth < MAX_GROWTH, f"RSS grew {growth / 2**20:.0f} MB after warm-up; MB per round: {mb}"
    # And no steady climb: the second half of the run holds no more than the first half's peak + 50 MB.
    half = len(samples) // 2
    assert max(samples[half:]) < max(samples[WARM_UP_ROUNDS:half]) + 50 * 2**20, mb
