"""Admission control: how it judges the work ahead, and over a real socket: a full worker sheds
at once with an answer every common client can read, a client that leaves is dropped.

The servers run with one inference thread and a short queue, and are kept busy with a
photo of four people side by side, so that photos really wait for the thread.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
import pytest
import requests
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from requests.structures import CaseInsensitiveDict

from app.api.admission import Admission
from app.api.photo_cost import PhotoCost
from app.api.problems import PROBLEM_JSON, ProblemError
from app.pipeline.decode import decode_image
from app.service.metrics import Metrics
from tests.conftest import LabelledPhoto, make_client
from tests.images import encode
from tests.server import running_server
from tests.test_api import assert_problem, classify

THREADS, QUEUE = 1, 2
KB = 1024


def test_a_photo_is_judged_by_recent_photos_of_its_size() -> None:
    cost = PhotoCost()
    assert cost.estimate(100 * KB) == 0.0  # nothing timed yet
    cost.learn(20 * KB, 0.05)
    cost.learn(600 * KB, 0.4)
    assert cost.estimate(25 * KB) == 0.05 and cost.estimate(700 * KB) == 0.4
    assert cost.estimate(None) == 0.4  # a chunked upload of unknown size: the dearest class
    assert cost.estimate(5 * KB) == 0.05 and cost.estimate(9000 * KB) == 0.4  # the nearest class seen
    cost.learn(610 * KB, 0.9)  # a moving average: one slow photo moves it, not all the way
    assert 0.4 < cost.estimate(600 * KB) < 0.9 and cost.estimate(20 * KB) == 0.05
    cost.learn(None, 5.0)
    assert cost.estimate(None) < 5.0


def test_the_work_ahead_is_summed_photo_by_photo() -> None:
    """Two threads, half a second of waiting allowed: small photos are admitted where large ones
    of the same number would be shed, and the count cap holds whatever they cost."""
    admission = Admission(threads=2, max_queue=6, metrics=Metrics(), max_wait_s=0.5)
    admission.cost.learn(20 * KB, 0.05)
    admission.cost.learn(600 * KB, 0.4)
    small = [admission.take_place(20 * KB) for _ in range(8)]  # 8 x 0.05 s / 2 threads = 0.2 s ahead
    assert admission.expected_wait() == pytest.approx(0.2)
    with pytest.raises(ProblemError, match="8 photos in flight or waiting") as full:
        admission.take_place(20 * KB)
    assert full.value.status == 503 and full.value.headers == {"Retry-After": "1"}
    for place in small:
        admission.give_place_back(place)
    assert admission.expected_wait() == 0.0
    large = [admission.take_place(600 * KB) for _ in range(3)]  # 1.2 s / 2 = 0.6 s ahead
    with pytest.raises(ProblemError, match=r"about 0\.6 s of work ahead"):
        admission.take_place(20 * KB)
    admission.give_place_back(large[0])
    assert admission.take_place(20 * KB).cost == 0.05  # 0.4 s ahead now


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


@pytest.fixture(scope="module")
def five_mb_photo() -> bytes:
    """A 5 MB JPEG (noise, 2100 x 2100): far more than a socket's buffers hold, so a client that
    writes it whole before reading is still writing when the server has answered."""
    noise = np.random.default_rng(26).integers(0, 256, (2100, 2100, 3), dtype=np.uint8)
    photo = encode(noise, quality=95)
    assert 4.5e6 < len(photo) < 10 * 2**20  # within the upload limit
    return photo


@pytest.fixture(scope="module")
def full_server(tmp_path_factory: pytest.TempPathFactory, one_face: LabelledPhoto) -> Iterator[str]:
    """A worker with one place, held by an upload that never ends: every other photo is shed."""
    log = tmp_path_factory.mktemp("full") / "server.log"
    with running_server(log, INFERENCE_THREADS="1", MAX_QUEUE="0", LOG_LEVEL="WARNING") as base:
        holder = raw_post(base, one_face.path.read_bytes(), sent=1000)
        wait_for_depth(base, 1)
        yield base
        holder.close()


def assert_shed(status: int, headers: Mapping[str, str], body: bytes) -> None:
    assert status == 503 and headers["Retry-After"] == "1", (status, dict(headers))
    assert headers["Content-Type"] == PROBLEM_JSON and "busy" in json.loads(body)["detail"]


@pytest.mark.slow
def test_every_common_client_reads_the_shed_answer_to_a_large_upload(
    full_server: str, five_mb_photo: bytes, tmp_path: Path
) -> None:
    """urllib writes the whole body before it reads and asks to close the connection after the
    answer; had the server closed it with the upload still arriving, the client would see a
    broken pipe instead of the 503 (it did, every time, before the shed upload was read).
    requests, httpx and curl keep the connection alive; curl also speaks HTTP/1.0, which closes."""
    url = f"{full_server}/v1/classify"
    form = httpx.Request("POST", url, files={"file": ("big.jpg", five_mb_photo, "image/jpeg")})
    body, content_type = form.read(), form.headers["Content-Type"]
    for _ in range(3):
        request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
        with pytest.raises(urllib.error.HTTPError) as shed:
            urllib.request.urlopen(request, timeout=60)
        assert_shed(shed.value.code, shed.value.headers, shed.value.read())

    with requests.Session() as session:  # keep-alive: the connection serves the retry too
        for _ in range(2):
            answer = session.post(url, files={"file": ("big.jpg", five_mb_photo, "image/jpeg")}, timeout=60)
            assert_shed(answer.status_code, answer.headers, answer.content)

    with httpx.Client(timeout=60) as client:
        for _ in range(2):
            answer = client.post(url, files={"file": ("big.jpg", five_mb_photo, "image/jpeg")})
            assert_shed(answer.status_code, answer.headers, answer.content)

    (tmp_path / "big.jpg").write_bytes(five_mb_photo)
    curl = shutil.which("curl")
    assert curl, "curl is missing (scripts/ci-install-test-packages.sh installs it)"
    for version in ("--http1.1", "--http1.0"):  # HTTP/1.0: the connection closes after the answer
        run = subprocess.run(
            [curl, version, "-sS", "-D", "-", "-F", f"file=@{tmp_path / 'big.jpg'};type=image/jpeg", url],
            capture_output=True,
            timeout=60,
            check=True,
        )
        head, _, answer_body = run.stdout.partition(b"\r\n\r\n")
        status_line, *lines = head.decode().split("\r\n")
        headers = {k: v.strip() for k, v in (line.split(":", 1) for line in lines)}
        assert_shed(int(status_line.split()[1]), CaseInsensitiveDict(headers), answer_body)
    assert metric(full_server, "inference_shed_total", reason="full") >= 9


@pytest.mark.slow
def test_a_browser_fetch_reads_the_shed_answer_to_a_large_upload(full_server: str, browser) -> None:
    page = browser.new_page()
    try:
        page.goto(f"{full_server}/livez")  # same origin: every header of the answer is readable
        answer = page.evaluate(
            """async () => {
                const form = new FormData();
                const photo = new Blob([new Uint8Array(5 * 1024 * 1024)], {type: "image/jpeg"});
                form.append("file", photo, "big.jpg");
                const response = await fetch("/v1/classify", {method: "POST", body: form});
                return {status: response.status, headers: Object.fromEntries(response.headers),
                        body: await response.text()};
            }"""
        )
    finally:
        page.close()
    assert_shed(answer["status"], CaseInsensitiveDict(answer["headers"]), answer["body"].encode())


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
