"""The two loads of bench/load.py, scaled down, against a real uvicorn process on the default settings.

No speed is asserted (a shared CI machine says little about it); the full runs, their
numbers and the targets live in bench/load.py and docs/load.md. What must hold:

- steady: 16 clients post real photos of mixed sizes one after another: every one is
  answered 200, none shed;
- burst: far more clients than places post a four-face photo at once: each is answered 200
  or 503 with ``Retry-After``, no more are admitted than the worker has places, every 503 was
  counted by the server as shed on arrival (none waited and timed out), and came sooner than
  the median admitted answer; ``/readyz`` answered 200 throughout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.config import PROJECT_ROOT, Settings
from tests.server import running_server

pytestmark = pytest.mark.slow

PLACES = Settings(_env_file=None).inference_threads + Settings(_env_file=None).max_queue


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_server(tmp_path_factory.mktemp("load") / "server.log", LOG_LEVEL="WARNING") as base:
        yield base


def bench(tmp_path: Path, *args: str) -> dict:
    """Run bench/load.py with ``args``; its one round's results."""
    out = tmp_path / "load.json"
    run = subprocess.run(
        [sys.executable, "bench/load.py", *args, "--warm-up", "4", "--json", str(out)],
        cwd=PROJECT_ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    (result,) = json.loads(out.read_text())["rounds"]
    return result


def test_sixteen_clients_of_mixed_photos_are_all_answered(server: str, tmp_path: Path) -> None:
    photos_per_client = 4
    result = bench(
        tmp_path, "steady", "--url", server, "--clients", "16", "--photos-per-client", str(photos_per_client)
    )
    assert result["answers"] == {"200": 16 * photos_per_client} and result["errors"] == 0
    admitted = result["admitted_ms"]
    assert 0 < admitted["p50"] <= admitted["p95"] <= admitted["p99"] <= admitted["max"]
    assert result["processes"] == 1 and result["rss_mb"][0] > 50  # the script found the server
    assert result["readyz"]["probes"] > 0 and result["readyz"]["not_200"] == 0
    assert not result["server"].get("inference_shed full") and not result["server"].get("inference_shed slow")


def test_a_burst_far_past_capacity_is_shed_on_arrival(server: str, tmp_path: Path) -> None:
    clients = 60
    result = bench(tmp_path, "burst", "--url", server, "--clients", str(clients))
    answers, view = result["answers"], result["server"]
    assert set(answers) <= {"200", "503"} and result["errors"] == 0, answers  # every 503 had Retry-After
    assert 0 < answers["200"] <= PLACES and answers["503"] == clients - answers["200"], answers
    assert view["inference_shed full"] == answers["503"] and "inference_dropped timeout" not in view
    assert result["shed_ms"]["max"] < result["admitted_ms"]["p50"], "503s came no sooner than the work"
    assert result["readyz"]["probes"] > 0 and result["readyz"]["not_200"] == 0
    assert httpx.get(f"{server}/readyz").status_code == 200


def test_refuses_a_non_loopback_url() -> None:
    run = subprocess.run(
        [sys.executable, "bench/load.py", "steady", "--url", "http://192.0.2.1:8000"],
        cwd=PROJECT_ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and "loopback" in run.stderr
