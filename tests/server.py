"""Run the real service in a uvicorn process, for tests that need a socket."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from app.config import PROJECT_ROOT

#: Places alone decide admission (the wait estimate is effectively off).
NO_WAIT_ESTIMATE = {"MAX_QUEUE_WAIT_S": "600"}


class ServerURL(str):
    """The base URL of a running server (a plain ``str``) that also knows the server's process id."""

    pid: int

    def __new__(cls, url: str, pid: int) -> ServerURL:
        self = super().__new__(cls, url)
        self.pid = pid
        return self


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_server(
    log_path: Path,
    timeout: float = 120.0,
    wait_for: str = "/readyz",
    module: str = "app",
    port: int | None = None,
    **env: str,
) -> Iterator[ServerURL]:
    """Start ``python -m <module> serve`` on a free loopback port; yield its base URL; stop it.

    ``module`` is ``app`` (the classify service) or ``enrolment`` (the trainer); ``port`` is
    chosen beforehand when another process must know the URL first (default: a free port).

    It is yielded once ``wait_for`` answers 200: ``/readyz`` (model loaded) by default,
    ``/livez`` for a server that is expected never to become ready.

    The URL is a ``str``; its ``pid`` is the server process (with ``WORKERS`` > 1, uvicorn's
    supervisor, whose children are the workers).

    The default settings, but for one: ``MAX_QUEUE_WAIT_S`` sheds photos by how fast this
    machine answered recent ones, and a test about something else must not fail because the
    machine is busy; tests of that shedding set it (tests/test_admission.py).
    """
    port = port or free_port()
    environment = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", **NO_WAIT_ESTIMATE, **env}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module, "serve"],
            cwd=PROJECT_ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = ServerURL(f"http://127.0.0.1:{port}", process.pid)
        try:
            deadline = time.monotonic() + timeout
            while True:
                assert process.poll() is None, f"server exited early:\n{log_path.read_text()}"
                try:
                    if httpx.get(f"{base}{wait_for}", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, f"server not ready:\n{log_path.read_text()}"
                time.sleep(0.2)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
