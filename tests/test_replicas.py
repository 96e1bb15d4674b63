"""Two replicas behind a real nginx, round-robin: both answer, and uploads pass the proxy intact.

Two real uvicorn servers and Debian's nginx, run on free loopback ports, with the shipped
proxy config (deploy/nginx/replicas.conf) in which only the upstream servers and the
listen address are swapped for local ones. Which replica served a request is read from
its own JSON log, where the service writes the X-Request-ID the proxy forwarded.

nginx comes from `scripts/ci-install-test-packages.sh`. On a developer machine without it the
test skips; with CI=true it fails instead, so CI cannot pass by not running it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest

from app.config import PROJECT_ROOT
from harness.processes import free_port
from tests.conftest import ARTIFACTS, LabelledPhoto
from tests.server import running_server

pytestmark = pytest.mark.slow

PROXY_CONF = PROJECT_ROOT / "deploy" / "nginx" / "replicas.conf"
UPSTREAM_LINE = "server api:8000 max_fails=1 fail_timeout=5s;"
LISTEN_LINE = "listen 8080;"


def nginx_binary() -> str:
    """Debian's nginx, or a skip (a failure under CI=true)."""
    found = shutil.which("nginx") or next((p for p in ["/usr/sbin/nginx"] if os.access(p, os.X_OK)), None)
    if found is None:
        message = "nginx is not installed: run scripts/ci-install-test-packages.sh"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def render_config(workdir: Path, listen_port: int, upstream_ports: list[int]) -> Path:
    """A complete nginx.conf around the shipped include, with every path nginx writes in ``workdir``."""
    include = PROXY_CONF.read_text()
    assert include.count(UPSTREAM_LINE) == 1 and include.count(LISTEN_LINE) == 1, "replicas.conf changed"
    servers = "\n    ".join(f"server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;" for p in upstream_ports)
    include = include.replace(UPSTREAM_LINE, servers).replace(LISTEN_LINE, f"listen 127.0.0.1:{listen_port};")
    (workdir / "replicas.conf").write_text(include)
    # As root, nginx's workers would drop to `nobody`, who cannot enter pytest's private tmp dirs.
    user = "user root;" if os.geteuid() == 0 else ""
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"""
        {user}
        worker_processes 1;
        pid {workdir}/nginx.pid;
        error_log {workdir}/error.log warn;
        events {{ worker_connections 64; }}
        http {{
            access_log {workdir}/access.log;
            client_body_temp_path {workdir}/body;
            proxy_temp_path {workdir}/proxy;
            fastcgi_temp_path {workdir}/fastcgi;
            uwsgi_temp_path {workdir}/uwsgi;
            scgi_temp_path {workdir}/scgi;
            include {workdir}/replicas.conf;
        }}
        """
    )
    return conf


@contextmanager
def running_nginx(nginx: str, conf: Path, port: int) -> Iterator[str]:
    """Run ``nginx -c conf`` in the foreground; yield its URL once it accepts connections."""
    subprocess.run([nginx, "-t", "-q", "-c", str(conf)], check=True, capture_output=True)
    process = subprocess.Popen(
        [nginx, "-c", str(conf), "-g", "daemon off;"], stderr=subprocess.PIPE, stdout=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            try:
                httpx.get(f"{url}/livez", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()  # SIGTERM: nginx's fast shutdown
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[Path]]]:
    """The proxy's URL and the two replicas' log files."""
    nginx = nginx_binary()
    workdir = tmp_path_factory.mktemp("replicas")
    logs = [workdir / "replica-a.log", workdir / "replica-b.log"]
    env = {"ARTIFACTS_DIR": str(ARTIFACTS), "CLASSIFIER_BACKEND": "svm", "LOG_LEVEL": "INFO"}
    with ExitStack() as stack:
        urls = [stack.enter_context(running_server(log, **env)) for log in logs]
        port = free_port()
        conf = render_config(workdir, port, [int(u.rsplit(":", 1)[1]) for u in urls])
        yield stack.enter_context(running_nginx(nginx, conf, port)), logs


def served_ids(log: Path) -> set[str]:
    """Request ids of the requests this replica answered, from its JSON access log lines."""
    ids = set()
    for line in log.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("logger") == "app.access":
            ids.add(record.get("request_id"))
    return ids


def test_both_replicas_answer_in_turn(proxied: tuple[str, list[Path]], one_face: LabelledPhoto) -> None:
    url, logs = proxied
    sent = [f"replicas-{uuid.uuid4().hex}" for _ in range(10)]
    data = one_face.path.read_bytes()
    with httpx.Client(base_url=url, timeout=60) as client:
        for rid in sent:
            response = client.post(
                "/v1/classify", files={"file": ("photo.jpg", data)}, headers={"X-Request-ID": rid}
            )
            assert response.status_code == 200, response.text
            assert response.headers["x-request-id"] == rid  # the proxy forwarded it; the replica echoed it
            assert response.json()["faces"][0]["label"] == one_face.label
    deadline = time.monotonic() + 5  # the replicas' log lines are written after the response
    while True:
        per_replica = [served_ids(log) & set(sent) for log in logs]
        if sum(map(len, per_replica)) == len(sent) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert set.union(*per_replica) == set(sent)
    assert not per_replica[0] & per_replica[1]  # each request was served once, by one replica
    counts = sorted(map(len, per_replica))
    assert counts[0] >= len(sent) // 2 - 1, f"not round-robin: {counts}"  # 5 and 5, give or take one


def test_the_proxy_keeps_the_services_upload_limit(proxied: tuple[str, list[Path]]) -> None:
    """nginx's default limit (1 MB) would refuse real photos; the shipped config uses the service's."""
    url, _ = proxied
    limit = 10 * 1024 * 1024 + 64 * 1024  # MAX_UPLOAD_BYTES plus the service's multipart allowance
    with httpx.Client(base_url=url, timeout=60) as client:
        # 2 MB of junk passes the proxy, and the service itself refuses it as not an image.
        passed = client.post("/v1/classify", files={"file": ("big.jpg", b"\xff" * (2 * 1024 * 1024))})
        assert passed.status_code == 415, passed.text
        assert passed.headers["content-type"].startswith("application/problem+json")
        # At the limit exactly, the service decides (not multipart: its 422), so both limits agree.
        at_limit = client.post("/v1/classify", content=b"x" * limit, headers={"Content-Type": "image/jpeg"})
        assert at_limit.status_code == 422, at_limit.text
        # Over the limit: the proxy refuses it, in the service's problem+json shape, and no
        # replica is marked failed (the next request still reaches both).
        too_big = client.post(
            "/v1/classify", content=b"x" * (limit + 1), headers={"Content-Type": "image/jpeg"}
        )
        assert too_big.status_code == 413, too_big.text
        assert too_big.headers["content-type"].startswith("application/problem+json")
        assert too_big.json()["status"] == 413
        assert all(client.get("/livez").status_code == 200 for _ in range(4))
