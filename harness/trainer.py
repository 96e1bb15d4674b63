"""A real trainer process killed with SIGKILL in the middle of a change, and what it left behind.

Shared by tests/test_enrolment.py (a few kills) and bench/enrolment.py (ten).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

from app.artifact.file_names import LATEST
from enrolment.settings import EnrolmentSettings
from enrolment.store import Store
from enrolment.versions import check_published
from harness.processes import running_server


@dataclass(frozen=True)
class KillOutcome:
    delay: float
    #: The interrupted change reached the store (its transaction committed).
    committed: bool
    #: A new version was published before the kill.
    published: bool
    #: What check_published and Store.check found wrong right after the kill (should be nothing).
    problems: list[str]


def trainer_env(settings: EnrolmentSettings) -> dict[str, str]:
    assert settings.api_key is not None
    return {
        "API_KEY": settings.api_key.get_secret_value(),
        "ENROL_STORE_DIR": str(settings.store_dir),
        "ENROL_ARTIFACTS_DIR": str(settings.artifacts_dir),
        "ENROL_BACKEND": settings.backend,
        "ENROL_WAIT_S": "300",
    }


def _latest(settings: EnrolmentSettings) -> str | None:
    pointer = settings.artifacts_dir / settings.backend / LATEST
    return pointer.read_text().strip() if pointer.is_file() else None


def kill_mid_change(
    settings: EnrolmentSettings,
    person: str,
    photos: list[tuple[str, bytes]],
    delay: float,
    log: Path,
    after: Callable[[], bool] | None = None,
) -> KillOutcome:
    """Start the trainer, enrol ``person``, SIGKILL the process ``delay`` s into the photos request
    (or ``delay`` s after ``after()`` first holds, polled every 5 ms)."""
    store = Store(settings.store_dir, settings.max_people)
    revision, latest = store.revision(), _latest(settings)
    key = {"X-API-Key": settings.api_key.get_secret_value()} if settings.api_key else {}
    with running_server(log, "enrolment", env=trainer_env(settings)) as base:
        client = httpx.Client(base_url=base, headers=key, timeout=300)
        assert client.post("/v1/people", data={"id": person, "name": person}).status_code == 201

        def post() -> None:
            uploads = [("files", (name, data, "image/jpeg")) for name, data in photos]
            with suppress(httpx.TransportError):  # the server dies under it: that is the point
                client.post(f"/v1/people/{person}/photos", files=uploads)

        request = threading.Thread(target=post)
        request.start()
        deadline = time.monotonic() + 120
        while after is not None and not after():
            assert time.monotonic() < deadline and request.is_alive(), "the awaited moment never came"
            time.sleep(0.005)
        time.sleep(delay)
        os.kill(base.pid, signal.SIGKILL)
        request.join()
    problems = check_published(settings) + store.check()
    return KillOutcome(delay, store.revision() > revision, _latest(settings) != latest, problems)


def wait_built(base: str, settings: EnrolmentSettings, timeout: float = 300) -> dict:
    """Poll until the running trainer has built the store's newest revision; its build."""
    store = Store(settings.store_dir, settings.max_people)
    key = {"X-API-Key": settings.api_key.get_secret_value()} if settings.api_key else {}
    deadline = time.monotonic() + timeout
    while True:
        build = httpx.get(f"{base}/v1/builds/{store.revision()}", headers=key, timeout=30).json()
        if build["status"] != "pending":
            return build
        assert time.monotonic() < deadline, f"not built after {timeout} s: {build}"
        time.sleep(0.2)
