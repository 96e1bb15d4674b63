"""HTTP behaviour against the small model: answers, problems, the key, health, the seed's shape."""

from __future__ import annotations

import base64
from importlib import metadata
from pathlib import Path

from fastapi.testclient import TestClient

from app.api.problems import PROBLEM_JSON
from tests.fast.conftest import PEOPLE, SmallModel, fast_client
from tests.images import encode, no_face_image


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["status"] == status and body["detail"]
    return body


def test_classify_answers_from_the_model_the_dependency_gives(client: TestClient, small: SmallModel) -> None:
    response = client.post("/v1/classify", files={"file": ("p.jpg", small.photo)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"backend": "svm", "version": "fast-tier"}
    assert body["faces"], "Haar finds the face of a photo the model was fitted on"
    for face in body["faces"]:
        assert list(face["probabilities"]) == list(PEOPLE)
        assert abs(sum(face["probabilities"].values()) - 1) < 1e-4
    info = client.get("/v1/models").json()
    assert [c["id"] for c in info["classes"]] == list(PEOPLE)
    assert info["detector"] == "haar"


def test_a_photo_without_a_face_is_an_empty_answer(client: TestClient) -> None:
    response = client.post("/v1/classify", files={"file": ("blank.png", encode(no_face_image(), "PNG"))})
    assert response.status_code == 200
    assert response.json()["faces"] == []


def test_bad_uploads_are_problems_and_the_server_keeps_serving(client: TestClient, small: SmallModel) -> None:
    assert_problem(client.post("/v1/classify", files={"file": ("x.jpg", b"not an image")}), 415)
    assert_problem(client.post("/v1/classify", files={"file": ("x.jpg", b"")}), 400)
    two = [("file", ("a.jpg", small.photo)), ("file", ("b.jpg", small.photo))]
    assert_problem(client.post("/v1/classify", files=two), 422)
    assert_problem(client.post("/v1/classify", data={"nothing": "here"}), 422)
    assert client.post("/v1/classify", files={"file": ("p.jpg", small.photo)}).status_code == 200


def test_not_ready_is_503_with_retry_after(tmp_path: Path, small: SmallModel) -> None:
    for client in fast_client(None, tmp_path):
        assert_problem(client.get("/readyz"), 503)
        response = client.post("/v1/classify", files={"file": ("p.jpg", small.photo)})
        assert_problem(response, 503)
        assert response.headers["Retry-After"]
        assert client.get("/livez").status_code == 200


def test_ready_names_the_served_version(client: TestClient) -> None:
    assert client.get("/readyz").json() == {"status": "ok", "detail": "svm/fast-tier"}


def test_api_key_guards_v1_only(small: SmallModel, tmp_path: Path) -> None:
    for client in fast_client(small.recognizer, tmp_path, api_key="s3cret"):
        upload = {"file": ("p.jpg", small.photo)}
        body = assert_problem(client.post("/v1/classify", files=upload), 401)
        assert "X-API-Key" in body["detail"]
        assert_problem(client.post("/v1/classify", files=upload, headers={"X-API-Key": "wrong"}), 401)
        ok = client.post("/v1/classify", files=upload, headers={"X-API-Key": "s3cret"})
        assert ok.status_code == 200
        assert client.get("/readyz").status_code == 200


def test_seed_route_answers_its_declared_shape(client: TestClient, small: SmallModel) -> None:
    url = "data:image/jpeg;base64," + base64.b64encode(small.photo).decode()
    response = client.post("/classify_image", data={"image_data": url})
    assert response.status_code == 200, response.text
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    faces = response.json()
    assert faces
    for face in faces:
        assert set(face) == {"class", "class_probability", "class_dictionary"}
        assert face["class_dictionary"] == {p: i for i, p in enumerate(PEOPLE)}
        assert abs(sum(face["class_probability"]) - 100) < 0.1
    assert_problem(client.post("/classify_image", data={"image_data": "data:image/png;base64,@@"}), 400)


def test_the_api_reports_the_installed_version(client: TestClient) -> None:
    assert client.get("/openapi.json").json()["info"]["version"] == metadata.version("hobbit-classifier")
