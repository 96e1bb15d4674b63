"""Shared fixtures: the real photos from ../shared, the committed models, and a served app."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from app.artifact.manifest import load_manifest, resolve_version_dir
from app.backends import BACKENDS as REGISTERED_BACKENDS
from app.config import PROJECT_ROOT, Settings
from app.main import create_app
from app.pipeline.decode import decode_image
from app.pipeline.detect import create_detector
from tests.images import encode, side_by_side
from tests.server import NO_WAIT_ESTIMATE

DATA_DIR = Path(os.environ.get("HOBBIT_DATA", PROJECT_ROOT.parent / "shared" / "data" / "hobbits"))
ARTIFACTS = PROJECT_ROOT / "artifacts"


@dataclass(frozen=True)
class LabelledPhoto:
    label: str
    path: Path

    @property
    def rgb(self) -> np.ndarray:
        return decode_image(self.path.read_bytes())


@pytest.fixture(scope="session")
def data_dir() -> Path:
    assert DATA_DIR.is_dir(), f"the shared photos are expected at {DATA_DIR} (set HOBBIT_DATA)"
    return DATA_DIR


@pytest.fixture(scope="session")
def held_out(data_dir: Path) -> list[LabelledPhoto]:
    """The committed svm model's test photos: never seen in its training."""
    manifest = load_manifest(resolve_version_dir(ARTIFACTS, "svm"))
    return [LabelledPhoto(f.split("/")[0], data_dir / f) for f in manifest.dataset["test_files"]]


@pytest.fixture(scope="session")
def single_face_photos(held_out: list[LabelledPhoto]) -> list[LabelledPhoto]:
    """Held-out photos in which the default detector finds exactly one face."""
    manifest = load_manifest(resolve_version_dir(ARTIFACTS, "svm"))
    detector = create_detector(manifest.detector.name)
    photos = [p for p in held_out if len(detector.detect(p.rgb)) == 1]
    assert len({p.label for p in photos}) >= 2
    return photos


@pytest.fixture(scope="session")
def one_face(single_face_photos: list[LabelledPhoto]) -> LabelledPhoto:
    return single_face_photos[0]


@pytest.fixture(scope="session")
def two_face_composite(single_face_photos: list[LabelledPhoto]) -> tuple[bytes, list[str]]:
    """Two held-out photos of different people side by side; their labels, left to right."""
    first = single_face_photos[0]
    second = next(p for p in single_face_photos if p.label != first.label)
    return encode(side_by_side(first.rgb, second.rgb)), [first.label, second.label]


@pytest.fixture(scope="session")
def four_people(single_face_photos: list[LabelledPhoto]) -> bytes:
    """Four held-out photos of different people side by side: a photo that keeps a thread busy."""
    people: dict[str, LabelledPhoto] = {}
    for photo in single_face_photos:
        people.setdefault(photo.label, photo)
    assert len(people) >= 4
    return encode(side_by_side(*(p.rgb for p in list(people.values())[:4])))


def wait_ready(client: TestClient, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.1)
    raise AssertionError(f"not ready after {timeout}s: {client.get('/readyz').json()}")


def make_client(wait: bool = True, **overrides) -> Iterator[TestClient]:
    """A TestClient (httpx underneath) on a real app with real settings; lifespan runs.

    As for ``tests.server.running_server``, the speed-dependent wait estimate is off unless set.
    """
    defaults = {"artifacts_dir": ARTIFACTS, "max_queue_wait_s": float(NO_WAIT_ESTIMATE["MAX_QUEUE_WAIT_S"])}
    settings = Settings(_env_file=None, **{**defaults, **overrides})
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        if wait:
            wait_ready(client)
        yield client


BACKENDS = list(REGISTERED_BACKENDS.names)


@pytest.fixture(scope="session", params=BACKENDS)
def client(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    """The service on each committed default model."""
    yield from make_client(classifier_backend=request.param)


# ---- the browser, for tests/test_web.py and tests/test_enrolment_web.py -----------------------
# One Playwright per session: a second sync_playwright() in the same thread cannot start.

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # we run as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{reason}: CI must run the browser tests (run scripts/ci-install-test-packages.sh)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (the dev extra)")
    if not (CHROMIUM.exists() or shutil.which("chromium")):
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium")),
            headless=True,
            args=CHROMIUM_ARGS,
        )
        yield browser
        browser.close()
