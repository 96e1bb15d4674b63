"""Operations: metrics, request ids, the API key, and hot reload of a new model version."""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.artifact.manifest import load_manifest, resolve_version_dir, write_manifest
from tests.conftest import ARTIFACTS, LabelledPhoto, make_client
from tests.test_api import assert_problem, classify


def test_metrics_are_scraped(client: TestClient, one_face: LabelledPhoto) -> None:
    assert classify(client, one_face.path.read_bytes()).status_code == 200
    text = client.get("/metrics").text
    assert 'http_requests_total{method="POST",route="/v1/classify",status="200"}' in text
    assert "http_request_duration_seconds_bucket" in text
    assert "faces_per_photo_count" in text
    for stage in ("detect", "crop", "features", "classify"):
        assert f'inference_stage_seconds_count{{stage="{stage}"}}' in text
    assert 'model_info{backend="' in text


def test_request_id_is_echoed_or_made(client: TestClient) -> None:
    assert client.get("/livez", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    made = client.get("/livez", headers={"X-Request-ID": "bad id\nwith newline"}).headers["x-request-id"]
    assert len(made) == 32 and made.isalnum()


def test_api_key_guards_v1_only(one_face: LabelledPhoto) -> None:
    for guarded in make_client(api_key="s3cret"):
        data = one_face.path.read_bytes()
        assert_problem(classify(guarded, data), 401)
        response = guarded.post(
            "/v1/classify", files={"file": ("a.jpg", data)}, headers={"X-API-Key": "nope"}
        )
        assert_problem(response, 401)
        response = guarded.post(
            "/v1/classify", files={"file": ("a.jpg", data)}, headers={"X-API-Key": "s3cret"}
        )
        assert response.status_code == 200
        for open_path in ("/livez", "/readyz", "/metrics", "/docs"):
            assert guarded.get(open_path).status_code == 200, open_path


@pytest.fixture
def two_versions(tmp_path: Path) -> tuple[Path, str, str]:
    """An artifacts folder holding the committed svm model twice, as versions 'old' and 'new'."""
    source = resolve_version_dir(ARTIFACTS, "svm")
    for version in ("old", "new"):
        target = tmp_path / "svm" / version
        shutil.copytree(source, target)
        manifest = load_manifest(target)
        manifest.version = version
        write_manifest(target, manifest)
    (tmp_path / "svm" / "LATEST").write_text("old\n")
    return tmp_path, "old", "new"


def served_version(client: TestClient) -> str:
    return client.get("/v1/models").json()["version"]


def test_reload_swaps_without_dropping_requests(two_versions, one_face: LabelledPhoto) -> None:
    root, old, new = two_versions
    for client in make_client(artifacts_dir=root, model_watch_interval_s=0):
        assert served_version(client) == old
        data = one_face.path.read_bytes()
        with ThreadPoolExecutor(4) as pool:
            busy = [pool.submit(classify, client, data) for _ in range(12)]
            reload = client.post("/v1/models/reload", json={"version": new})
            codes = [f.result().status_code for f in busy]
        assert reload.status_code == 200 and reload.json()["version"] == new
        assert codes == [200] * 12
        assert served_version(client) == new


def test_failed_reload_keeps_the_old_model(two_versions) -> None:
    root, old, new = two_versions
    model = next((root / "svm" / new).glob("model.*"))
    model.write_bytes(model.read_bytes()[:-10])  # truncated: no longer matches the manifest
    for client in make_client(artifacts_dir=root, model_watch_interval_s=0):
        body = assert_problem(client.post("/v1/models/reload", json={"version": new}), 409)
        assert "does not match" in body["detail"]
        assert_problem(client.post("/v1/models/reload", json={"version": "../../etc"}), 409)
        assert served_version(client) == old
        assert client.get("/readyz").status_code == 200


def test_moving_latest_goes_live_without_a_restart(two_versions) -> None:
    root, old, new = two_versions
    for client in make_client(artifacts_dir=root, model_watch_interval_s=0.2):
        assert served_version(client) == old
        (root / "svm" / "LATEST").write_text(f"{new}\n")
        deadline = time.monotonic() + 30
        while served_version(client) != new:
            assert time.monotonic() < deadline, "LATEST moved but the new version never went live"
            time.sleep(0.2)


def test_tampered_model_is_never_ready(tmp_path: Path) -> None:
    source = resolve_version_dir(ARTIFACTS, "svm")
    shutil.copytree(source, tmp_path / "svm" / source.name)
    (tmp_path / "svm" / "LATEST").write_text(source.name)
    manifest = json.loads((tmp_path / "svm" / source.name / "manifest.json").read_text())
    manifest["files"]["model.skops"] = "0" * 64
    (tmp_path / "svm" / source.name / "manifest.json").write_text(json.dumps(manifest))
    for client in make_client(wait=False, artifacts_dir=tmp_path):
        deadline = time.monotonic() + 20
        while "does not match" not in client.get("/readyz").text:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert_problem(client.get("/readyz"), 503)


def test_latest_fixed_after_a_failed_start_goes_live(two_versions) -> None:
    """No valid model at start-up: not ready; once LATEST names a good version, it is served."""
    root, _old, new = two_versions
    (root / "svm" / "LATEST").write_text("missing\n")
    for client in make_client(wait=False, artifacts_dir=root, model_watch_interval_s=0.2):
        assert_problem(client.get("/readyz"), 503)
        (root / "svm" / "LATEST").write_text(f"{new}\n")
        deadline = time.monotonic() + 30
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "LATEST was fixed but no model went live"
            time.sleep(0.2)
        assert served_version(client) == new


def test_the_watcher_does_not_undo_an_explicit_reload(two_versions) -> None:
    root, old, new = two_versions
    for client in make_client(artifacts_dir=root, model_watch_interval_s=0.1):
        assert served_version(client) == old
        assert client.post("/v1/models/reload", json={"version": new}).status_code == 200
        time.sleep(1.0)  # ten watcher turns; LATEST still names the old version
        assert served_version(client) == new


def test_a_bug_is_a_logged_500_problem_with_the_request_id(caplog: pytest.LogCaptureFixture) -> None:
    """A route that fails unexpectedly: problem+json, the request id, a logged traceback, still up."""
    for client in make_client():

        async def broken() -> None:
            raise RuntimeError("a bug")

        client.app.add_api_route("/broken", broken)
        with caplog.at_level("ERROR", logger="app.access"):
            response = client.get("/broken", headers={"X-Request-ID": "bug-1"})
        assert_problem(response, 500)
        assert response.headers["x-request-id"] == "bug-1"
        assert "a bug" not in response.text
        assert any(r.exc_info and "a bug" in str(r.exc_info[1]) for r in caplog.records)
        assert client.get("/readyz").status_code == 200
