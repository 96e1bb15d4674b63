"""The seed's ``POST /classify_image`` and the web page's files, in process over httpx."""

from __future__ import annotations

import base64
import re

import cv2
import numpy as np
from fastapi.testclient import TestClient

from app.api.problems import PROBLEM_JSON
from tests.images import encode, no_face_image


def data_url(data: bytes, mime: str = "image/jpeg") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def test_seed_shape_matches_v1_classify(
    client: TestClient, two_face_composite: tuple[bytes, list[str]]
) -> None:
    photo, _ = two_face_composite
    classes = [c["id"] for c in client.get("/v1/models").json()["classes"]]

    response = client.post("/classify_image", data={"image_data": data_url(photo)})

    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == "*"  # the seed's page read it cross-origin
    seed = response.json()
    v1 = client.post("/v1/classify", files={"file": ("a.jpg", photo, "image/jpeg")}).json()["faces"]
    assert len(seed) == len(v1) == 2
    for old, new in zip(seed, v1, strict=True):
        assert set(old) == {"class", "class_probability", "class_dictionary"}
        assert old["class"] == new["label"]
        assert old["class_dictionary"] == {c: i for i, c in enumerate(classes)}
        assert len(old["class_probability"]) == len(classes)
        assert abs(sum(old["class_probability"]) - 100) < 0.01 * len(classes)
        for class_id, index in old["class_dictionary"].items():
            percent = old["class_probability"][index]
            assert percent == round(percent, 2)
            assert abs(percent - 100 * new["probabilities"][class_id]) <= 0.005 + 1e-9


def test_seed_accepts_multipart_and_photos_over_a_megabyte(
    client: TestClient, two_face_composite: tuple[bytes, list[str]]
) -> None:
    """Starlette caps a multipart text field at 1 MB unless told otherwise; photos are often bigger."""
    photo, _ = two_face_composite
    rgb = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
    url = data_url(encode(cv2.resize(rgb, None, fx=2, fy=2), "PNG"), "image/png")
    assert len(url) > 1_100_000

    response = client.post("/classify_image", files={"image_data": (None, url)})

    assert response.status_code == 200, response.text
    assert len(response.json()) == 2


def test_seed_no_face_is_an_empty_list(client: TestClient) -> None:
    response = client.post("/classify_image", data={"image_data": data_url(encode(no_face_image()))})
    assert response.status_code == 200
    assert response.json() == []


def test_seed_bare_base64_is_accepted(client: TestClient) -> None:
    bare = base64.b64encode(encode(no_face_image(), "PNG")).decode()
    assert client.post("/classify_image", data={"image_data": bare}).status_code == 200


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


def test_seed_bad_base64_is_a_400_problem(client: TestClient) -> None:
    for bad in [
        "data:image/jpeg;base64,@@not*base64@@",
        "data:image/jpeg;base64,abc",
        "data:image/jpeg,rawtext",
        "",
    ]:
        body = assert_problem(client.post("/classify_image", data={"image_data": bad}), 400)
        assert "image_data" in body["detail"]


def test_seed_not_an_image_is_a_415_problem(client: TestClient) -> None:
    text = data_url(b"just some text, not a photo", "text/plain")
    assert_problem(client.post("/classify_image", data={"image_data": text}), 415)


def test_seed_missing_field_is_a_422_problem(client: TestClient) -> None:
    assert_problem(client.post("/classify_image", data={"image": "x"}), 422)


def test_seed_endpoint_is_deprecated_in_openapi(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/classify_image"]["post"]
    assert operation["deprecated"] is True
    assert "image_data" in str(operation["requestBody"])
    assert "/" not in client.get("/openapi.json").json()["paths"]  # the page is not an API route


def test_page_is_html_and_loads_nothing_from_other_hosts(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert {"/static/app.js", "/static/app.css"} <= set(assets)
    texts = {"/": page.text}
    for path in assets:
        response = client.get(path)
        assert response.status_code == 200, path
        texts[path] = response.text
    for path, text in texts.items():
        assert not re.findall(r"https?://|//[a-z0-9-]+\.[a-z]", text, re.IGNORECASE), path
        assert "@import" not in text and "url(http" not in text, path
