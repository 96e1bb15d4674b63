"""Admission control over a real socket: a full worker sheds at once, a client that leaves is dropped.

The server runs with one inference thread and a short queue, and is kept busy with a
photo of four people side by side, so that photos really wait for the thread.
"""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.api.problems import PROBLEM_JSON
from app.pipeline.decode import decode_image
from tests.conftest import LabelledPhoto, make_client
from tests.images import encode
from tests.server import running_server
from tests.test_api import assert_problem, classify

THREADS, QUEUE = 1, 2


def metric(base: str, name: str, **labels: str) -> float:
    """One sample of the server's /metrics, parsed with prometheus_client's own parser."""
    for family in text_string_to_metric_families(httpx.get(f"{base}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return sample.value
    raise AssertionError(f"no {name} {labels} in /metrics")


@pytest.fixture(scope="module")
def busy_photo(four_people: bytes) -> bytes:
    """Sixteen faces, two rows of the four-people photo twice: it holds a thread for a good while
    (tiles and sixteen embeddings) even on a quiet machine, so a queue really builds behind it."""
    row = decode_image(four_people)
    return encode(np.vstack([np.hstack([row, row])] * 2))


def post(base: str, data: bytes) -> httpx.Response:
    return httpx.post(f"{base}/v1/classify", files={"file": ("p.jpg", data, "image/jpeg")}, timeout=120)


@pytest.mark.slow
def test_a_full_worker_sheds_at_once_with_retry_after(tmp_path: Path, busy_photo: bytes) -> None:
    with running_server(
        tmp_path / "server.log",
        INFERENCE_THREADS=str(THREADS),
        MAX_QUEUE=str(QUEUE),
        LOG_LEVEL="WARNING",
    ) as base:
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda _: post(base, busy_photo), range(12)))
        admitted = [r for r in answers if r.status_code == 200]
        shed = [r for r in answers if r.status_code != 200]
        assert len(admitted) >= THREADS + QUEUE and shed, [r.status_code for r in answers]
        for response in shed:
            assert response.status_code == 503 and response.headers["content-type"] == PROBLEM_JSON
            assert "busy" in response.json()["detail"] and response.headers["retry-after"] == "1"
        assert len({len(r.json()["faces"]) for r in admitted}) == 1 and admitted[0].json()["faces"]
        # At once: each refusal was counted when its request arrived, none waited and timed out.
        assert metric(base, "inference_shed_total", reason="full") == len(shed)
        assert "inference_dropped_total{" not in httpx.get(f"{base}/metrics").text
        assert metric(base, "inference_queue_depth") == 0 and metric(base, "inference_in_flight") == 0
        # A request holds its place from its arrival: uploads that never end fill the worker, and
        # then the seed's endpoint is shed too.
        uploading = [raw_post(base, busy_photo, sent=1000) for _ in range(THREADS + QUEUE)]
        wait_for_depth(base, THREADS + QUEUE)
        seed = httpx.post(f"{base}/classify_image", data={"image_data": "aGVsbG8="}, timeout=30)
        assert seed.status_code == 503 and seed.headers["retry-after"] == "1"
        for sock in uploading:
            sock.close()
        assert httpx.get(f"{base}/readyz").status_code == 200


@pytest.mark.slow
def test_a_client_that_leaves_is_dropped_before_inference(tmp_path: Path, busy_photo: bytes) -> None:
    with running_server(
        tmp_path / "server.log",
        INFERENCE_THREADS="1",
        MAX_QUEUE="8",
        LOG_LEVEL="WARNING",
    ) as base:
        with ThreadPoolExecutor(3) as pool:
            blockers = [pool.submit(post, base, busy_photo) for _ in range(3)]  # 1 running, 2 waiting
            wait_for_depth(base, 2)
            leaver = raw_post(base, busy_photo)  # waits behind them ...
            wait_for_depth(base, 3)
            leaver.close()  # ... and its client goes away before a thread is free
            assert [f.result().status_code for f in blockers] == [200] * 3
        deadline = time.monotonic() + 30
        while metric(base, "inference_dropped_total", reason="client_gone", stage="waiting") < 1:
            assert time.monotonic() < deadline, "the disconnect was never noticed"
            time.sleep(0.05)
        assert metric(base, "inference_stage_seconds_count", stage="detect") == 3  # it never ran
        assert metric(base, "inference_queue_depth") == 0


@pytest.mark.slow
def test_photos_that_would_wait_too_long_are_shed_at_once(tmp_path: Path, four_people: bytes) -> None:
    """A long queue of slow photos: past MAX_QUEUE_WAIT_S of work ahead, the next is shed, not queued."""
    with running_server(
        tmp_path / "server.log",
        INFERENCE_THREADS="1",
        MAX_QUEUE="20",  # the count alone would admit all ten
        MAX_QUEUE_WAIT_S="0.05",  # far less than one four-face photo takes anywhere
        LOG_LEVEL="WARNING",
    ) as base:
        assert post(base, four_people).status_code == 200  # teaches the server what a photo costs
        with ThreadPoolExecutor(10) as pool:
            answers = list(pool.map(lambda _: post(base, four_people), range(10)))
        statuses = [r.status_code for r in answers]
        assert set(statuses) == {200, 503} and statuses.count(200) < 10, statuses
        for response in answers:
            if response.status_code == 503:
                assert "work ahead" in response.json()["detail"] and response.headers["retry-after"] == "1"
        assert metric(base, "inference_shed_total", reason="slow") == statuses.count(503)
        assert post(base, four_people).status_code == 200  # the queue drained; photos are admitted again


def wait_for_depth(base: str, depth: int) -> None:
    deadline = time.monotonic() + 60
    while metric(base, "inference_queue_depth") < depth:
        assert time.monotonic() < deadline, f"the queue never reached {depth}"
        time.sleep(0.02)


def raw_post(base: str, data: bytes, sent: int | None = None) -> socket.socket:
    """Send a classify request on a plain socket (only ``sent`` bytes of its body, if given)."""
    url = urlparse(base)
    request = httpx.Request("POST", f"{base}/v1/classify", files={"file": ("p.jpg", data, "image/jpeg")})
    body = request.read()
    head = "".join(f"{k}: {v}\r\n" for k, v in request.headers.items())
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    sock.sendall(f"POST /v1/classify HTTP/1.1\r\n{head}\r\n".encode() + body[:sent])
    return sock


def test_draining_sheds_new_photos_and_fails_readiness(one_face: LabelledPhoto) -> None:
    """What SIGTERM turns on (tests/test_shutdown.py sends the real signal to a real server)."""
    for client in make_client():
        client: TestClient
        assert classify(client, one_face.path.read_bytes()).status_code == 200
        client.app.state.admission.begin_draining()
        assert "shutting down" in assert_problem(client.get("/readyz"), 503)["detail"]
        response = classify(client, one_face.path.read_bytes())
        assert "shutting down" in assert_problem(response, 503)["detail"]
        assert response.headers["retry-after"] == "1"
        assert 'inference_shed_total{reason="draining"} 1.0' in client.get("/metrics").text
        assert client.get("/livez").status_code == 200
