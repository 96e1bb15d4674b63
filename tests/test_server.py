"""The service as a user runs it: a uvicorn process on a socket."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from tests.conftest import LabelledPhoto
from tests.images import MULTIPART_HEAD, encode, no_face_image
from tests.server import running_server

pytestmark = pytest.mark.slow

LIMIT = 1_000_000


@pytest.fixture(scope="module")
def server_log(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("server") / "server.log"


@pytest.fixture(scope="module")
def server(server_log: Path) -> Iterator[str]:
    with running_server(server_log, MAX_UPLOAD_BYTES=str(LIMIT), INFERENCE_THREADS="2") as base:
        yield base


def test_classify_over_a_socket(server: str, one_face: LabelledPhoto) -> None:
    files = {"file": ("photo.jpg", one_face.path.read_bytes(), "image/jpeg")}
    response = httpx.post(f"{server}/v1/classify", files=files, timeout=30)
    assert response.status_code == 200
    assert len(response.json()["faces"]) == 1


def test_logs_are_json_with_the_request_id(server: str, server_log: Path, one_face: LabelledPhoto) -> None:
    files = {"file": ("private-name.jpg", one_face.path.read_bytes(), "image/jpeg")}
    response = httpx.post(
        f"{server}/v1/classify", files=files, headers={"X-Request-ID": "trace-42"}, timeout=30
    )
    assert response.headers["x-request-id"] == "trace-42"
    time.sleep(0.2)
    records = [json.loads(line) for line in server_log.read_text().splitlines() if line.startswith("{")]
    assert records and all("level" in r and "time" in r for r in records)
    (access,) = [r for r in records if r.get("request_id") == "trace-42"]
    assert access["route"] == "/v1/classify" and access["status"] == 200
    text = server_log.read_text()
    assert "private-name" not in text and one_face.label not in text  # no file names, no results


def test_concurrent_requests_all_succeed(server: str, one_face: LabelledPhoto, two_face_composite) -> None:
    """16 requests at once on 2 inference threads: OpenCV objects are never shared mid-call."""
    payloads = [one_face.path.read_bytes(), two_face_composite[0], encode(no_face_image(), "PNG")] * 6

    def post(data: bytes) -> int:
        files = {"file": ("p.jpg", data, "application/octet-stream")}
        return len(httpx.post(f"{server}/v1/classify", files=files, timeout=60).json()["faces"])

    with ThreadPoolExecutor(16) as pool:
        counts = list(pool.map(post, payloads))
    assert counts == [1, 2, 0] * 6
    assert httpx.get(f"{server}/readyz").status_code == 200


def test_streamed_upload_is_refused_before_it_ends(server: str) -> None:
    """A chunked upload with no Content-Length is answered 413 once it passes the limit."""
    url = urlparse(server)
    sent = 0
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)  # keep little in flight
        sock.sendall(
            b"POST /v1/classify HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: multipart/form-data; boundary=abc\r\n\r\n"
        )
        sock.sendall(b"%x\r\n%s\r\n" % (len(MULTIPART_HEAD), MULTIPART_HEAD))
        chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
        answer = b""
        for _ in range(50 * LIMIT // 65536):
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                answer = sock.recv(65536)
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                answer = sock.recv(65536)
                break
            sent += 65536
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"application/problem+json" in answer
    assert sent < 10 * LIMIT  # far less than the 50 x LIMIT the client was ready to send
