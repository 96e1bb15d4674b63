"""Run the real service in a uvicorn process, for tests that need a socket: the tests' defaults over
the launcher the benchmarks use too (``harness.processes``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness import processes
from harness.processes import ServerURL

#: Places alone decide admission (the wait estimate is effectively off).
NO_WAIT_ESTIMATE = {"MAX_QUEUE_WAIT_S": "600"}


@contextmanager
def running_server(
    log_path: Path,
    timeout: float = 120.0,
    wait_for: str = "/readyz",
    module: str = "app",
    port: int | None = None,
    **env: str,
) -> Iterator[ServerURL]:
    """``harness.processes.running_server``, yielded once ``wait_for`` answers 200.

    ``/readyz`` (model loaded) by default, ``/livez`` for a server that is expected never to
    become ready. ``module`` is ``app`` (the classify service) or ``enrolment`` (the trainer);
    ``port`` is chosen beforehand when another process must know the URL first.

    The default settings, but for one: ``MAX_QUEUE_WAIT_S`` sheds photos by how fast this
    machine answered recent ones, and a test about something else must not fail because the
    machine is busy; tests of that shedding set it (tests/test_admission.py).
    """
    with processes.running_server(
        log_path,
        module,
        env=NO_WAIT_ESTIMATE | env,
        ready=processes.answers(wait_for),
        timeout=timeout,
        port=port,
    ) as base:
        yield base
