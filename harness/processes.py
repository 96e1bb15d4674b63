"""Run one of the project's services as a real process on a free loopback port, for tests and benchmarks.

The one launcher both use (``tests/server.py`` adds the tests' default settings): start
``python -m <module> serve`` from the project root with ``HOST`` and ``PORT`` set, wait
until it is ready, hand over its URL (with the process id), and stop it on the way out.
It imports nothing from the tests, so a benchmark run as a script can import it too.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

from app.config import PROJECT_ROOT


class ServerURL(str):
    """The base URL of a running server (a plain ``str``) that also knows the server's process id."""

    pid: int

    def __new__(cls, url: str, pid: int) -> ServerURL:
        self = super().__new__(cls, url)
        self.pid = pid
        return self


class ServerFailed(AssertionError):
    """The server exited early or was not ready in time; the message ends with its log.

    An ``AssertionError``, so a test that starts a server fails (rather than errors) when it
    cannot; a benchmark turns it into its one-line exit.
    """


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(path: str) -> Callable[[ServerURL], bool]:
    """The readiness check ``running_server`` uses by default: ``GET path`` answers 200."""

    def check(base: ServerURL) -> bool:
        try:
            return httpx.get(f"{base}{path}", timeout=2).status_code == 200
        except httpx.TransportError:
            return False  # not listening yet

    return check


@contextmanager
def running_server(
    log_path: Path,
    module: str = "app",
    *,
    env: Mapping[str, str] | None = None,
    ready: Callable[[ServerURL], bool] | None = None,
    timeout: float = 120.0,
    poll_s: float = 0.2,
    port: int | None = None,
) -> Iterator[ServerURL]:
    """Start ``python -m <module> serve`` on a free loopback port; yield its base URL; stop it.

    ``module`` is ``app`` (the classify service) or ``enrolment`` (the trainer); ``env`` is
    added to this process's environment. The URL is yielded once ``ready(url)`` holds, asked
    every ``poll_s`` seconds: by default (``answers("/readyz")``) once the model is loaded;
    ``answers("/livez")`` for a server that is expected never to become ready. Its ``pid`` is
    the server process (with ``WORKERS`` > 1, uvicorn's supervisor, whose children are the
    workers). Everything the server prints goes to ``log_path``. ``port`` is chosen beforehand
    when another process must know the URL first (default: a free one).
    """
    ready = ready or answers("/readyz")
    port = port or free_port()
    environment = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", **(env or {})}
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
            while not ready(base):
                if process.poll() is not None:
                    raise ServerFailed(f"server exited early:\n{log_path.read_text(errors='replace')}")
                if time.monotonic() > deadline:
                    raise ServerFailed(f"server not ready:\n{log_path.read_text(errors='replace')}")
                time.sleep(poll_s)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
