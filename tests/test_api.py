"""The HTTP API against the real app and the committed models, through httpx."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.api.problems import PROBLEM_JSON
from tests.conftest import LabelledPhoto, make_client
from tests.images import MULTIPART_HEAD, encode, no_face_image, png_bomb


def classify(client: TestClient, data: bytes, name: str = "photo.jpg", field: str = "file"):
    return client.post("/v1/classify", files={field: (name, data, "application/octet-stream")})


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    assert "Traceback" not in response.text
    return body


def test_one_face(client: TestClient, one_face: LabelledPhoto) -> None:
    response = classify(client, one_face.path.read_bytes())
    assert response.status_code == 200
    body = response.json()
    classes = [c["id"] for c in client.get("/v1/models").json()["classes"]]
    assert body["model"]["backend"] in ("svm", "cnn") and body["model"]["version"]
    height, width = one_face.rgb.shape[:2]
    assert body["image"] == {"width": width, "height": height}
    (face,) = body["faces"]
    box = face["box"]
    assert 0 <= box["x"] < box["x"] + box["width"] <= width
    assert 0 <= box["y"] < box["y"] + box["height"] <= height
    assert list(face["probabilities"]) == classes
    assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    assert face["label"] == one_face.label  # a held-out photo the model never saw
    assert face["confidence"] == pytest.approx(max(face["probabilities"].values()), abs=1e-6)


def test_boxes_of_a_large_photo_are_in_its_own_pixels(client: TestClient, one_face: LabelledPhoto) -> None:
    """A 3x upscaled photo is decoded at reduced size; its box still comes back in its own pixels."""
    rgb = one_face.rgb
    big = cv2.resize(rgb, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    (small,) = classify(client, encode(rgb)).json()["faces"]
    body = classify(client, encode(big)).json()
    assert body["image"] == {"width": big.shape[1], "height": big.shape[0]}
    (large,) = body["faces"]
    for key in ("x", "y", "width", "height"):
        assert large["box"][key] == pytest.approx(3 * small["box"][key], rel=0.1, abs=12), key
    assert large["label"] == small["label"]


def test_two_faces_sorted_left_to_right(client: TestClient, two_face_composite) -> None:
    data, labels = two_face_composite
    body = classify(client, data).json()
    assert [f["label"] for f in body["faces"]] == labels
    left, right = body["faces"]
    assert left["box"]["x"] + left["box"]["width"] <= right["box"]["x"]


def test_no_face_is_an_empty_list(client: TestClient) -> None:
    response = classify(client, encode(no_face_image(), "PNG"), "blank.png")
    assert response.status_code == 200
    assert response.json()["faces"] == []


def test_unknown_keeps_probabilities(one_face: LabelledPhoto) -> None:
    """With the threshold at 0 every face is a stranger, yet its class probabilities are still returned."""
    for strict in make_client(unknown_threshold=0.0):
        (face,) = classify(strict, one_face.path.read_bytes()).json()["faces"]
        assert face["label"] == "unknown"
        assert max(face["probabilities"], key=face["probabilities"].get) == one_face.label
        assert strict.get("/v1/models").json()["unknown_threshold"] == 0.0


def test_model_info(client: TestClient) -> None:
    info = client.get("/v1/models").json()
    assert info["backend"] in ("svm", "cnn")
    assert len(info["classes"]) >= 2
    assert 0 <= info["metrics"]["test"]["accuracy"] <= 1
    picture = info["classes"][0]["picture_url"]
    if picture:
        assert client.get(picture).headers["content-type"] == "image/jpeg"


def test_health(client: TestClient) -> None:
    assert client.get("/livez").json()["status"] == "ok"
    assert client.get("/readyz").status_code == 200
    assert client.get("/healthz").status_code == 200


def test_openapi_documents_responses_and_problems(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    responses = spec["paths"]["/v1/classify"]["post"]["responses"]
    assert "ClassifyResponse" in str(responses["200"])
    for status in ("400", "413", "415", "422", "503"):
        assert PROBLEM_JSON in responses[status]["content"], status


@pytest.mark.parametrize(
    ("name", "data", "status"),
    [
        ("random.jpg", bytes(range(256)) * 8, 415),
        ("notes.jpg", b"this is a text file, not a photo\n" * 20, 415),
        ("drawing.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', 415),
        ("doc.pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", 415),
        ("empty.jpg", b"", 400),
        ("bomb.png", png_bomb(), 413),
    ],
)
def test_bad_images_are_problems(client: TestClient, name: str, data: bytes, status: int) -> None:
    assert_problem(classify(client, data, name), status)
    assert client.get("/readyz").status_code == 200


def test_truncated_jpeg_is_400(client: TestClient, one_face: LabelledPhoto) -> None:
    data = one_face.path.read_bytes()
    assert_problem(classify(client, data[: len(data) // 2]), 400)


def test_missing_and_wrong_fields_are_422(client: TestClient, one_face: LabelledPhoto) -> None:
    assert_problem(client.post("/v1/classify"), 422)
    assert_problem(classify(client, one_face.path.read_bytes(), field="image"), 422)
    data = one_face.path.read_bytes()
    two = [("file", ("a.jpg", data, "image/jpeg")), ("file", ("b.jpg", data, "image/jpeg"))]
    assert_problem(client.post("/v1/classify", files=two), 422)


def test_unknown_route_is_a_problem(client: TestClient) -> None:
    assert_problem(client.get("/nowhere"), 404)
    assert_problem(client.get("/v1/classify"), 405)


@pytest.fixture(scope="module")
def small_limit_client():
    yield from make_client(max_upload_bytes=20_000, max_pixels=100_000)


def test_upload_over_byte_limit_is_413(small_limit_client: TestClient, one_face: LabelledPhoto) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    big = encode(noise, "PNG")
    assert len(big) > 20_000 + 64 * 1024
    assert_problem(classify(small_limit_client, big, "big.png"), 413)


def test_file_just_over_the_limit_is_413(small_limit_client: TestClient) -> None:
    """Within the body's allowance for the multipart envelope, but the file itself is too big."""
    noise = np.random.default_rng(1).integers(0, 255, (100, 100, 3), dtype=np.uint8)
    data = encode(noise, "PNG")
    assert 20_000 < len(data) < 20_000 + 64 * 1024
    assert_problem(classify(small_limit_client, data, "a.png"), 413)


def test_chunked_upload_over_the_limit_is_413(small_limit_client: TestClient) -> None:
    """No Content-Length: the limit is enforced on the bytes as they arrive (see test_server too)."""
    response = small_limit_client.post(
        "/v1/classify",
        content=(part for part in [MULTIPART_HEAD, b"x" * 200_000]),
        headers={"content-type": "multipart/form-data; boundary=abc"},
    )
    assert_problem(response, 413)


def test_over_pixel_limit_is_413(small_limit_client: TestClient) -> None:
    body = assert_problem(classify(small_limit_client, encode(no_face_image(400, 300), "PNG"), "a.png"), 413)
    assert "pixels" in body["detail"]


def test_a_photo_over_the_time_limit_is_503(one_face: LabelledPhoto) -> None:
    for hurried in make_client(request_timeout_s=0.001):
        response = classify(hurried, one_face.path.read_bytes())
        body = assert_problem(response, 503)
        assert "too long" in body["detail"] and response.headers["retry-after"]
        assert hurried.get("/readyz").status_code == 200


def test_not_ready_without_a_model(tmp_path) -> None:
    for client in make_client(wait=False, artifacts_dir=tmp_path):
        assert_problem(client.get("/readyz"), 503)
        response = classify(client, encode(no_face_image(), "PNG"))
        assert_problem(response, 503)
        assert response.headers["retry-after"]
        assert client.get("/livez").status_code == 200
