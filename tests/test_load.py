"""The short load run: bench/load.py, 16 clients x 100 requests against a real uvicorn process.

No timing is asserted here (speed on a shared CI machine says little); the full run and
its numbers live in bench/load.py and docs/load.md. What must hold: every request is
answered 200, and the script finds the server's memory to report.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from app.config import PROJECT_ROOT
from tests.conftest import LabelledPhoto
from tests.server import running_server

pytestmark = pytest.mark.slow


def test_sixteen_clients_hundred_requests_no_errors(tmp_path: Path, one_face: LabelledPhoto) -> None:
    out = tmp_path / "load.json"
    with running_server(tmp_path / "server.log", LOG_LEVEL="WARNING") as base:
        run = subprocess.run(
            [
                sys.executable,
                "bench/load.py",
                "--url",
                base,
                "--clients",
                "16",
                "--requests",
                "100",
                "--max-seconds",
                "240",
                "--photo",
                str(one_face.path),
                "--json",
                str(out),
            ],
            cwd=PROJECT_ROOT,
            check=False,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert httpx.get(f"{base}/readyz").status_code == 200
        pid = base.pid
    (result,) = json.loads(out.read_text())["rounds"]
    assert result["requests"] == 100 and not result["timed_out"]
    assert result["errors"] == 0 and result["outcomes"] == {"200": 100}
    assert 0 < result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"]
    assert result["processes"] == 1, f"expected the server process {pid} alone"
    assert result["rss_before_mb"] > 50 and result["rss_after_mb"] > 50


def test_refuses_a_non_loopback_url() -> None:
    run = subprocess.run(
        [sys.executable, "bench/load.py", "--url", "http://192.0.2.1:8000", "--requests", "1"],
        cwd=PROJECT_ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0 and "loopback" in run.stderr
