"""The trainer's people page in Debian's Chromium (Playwright), against a real uvicorn trainer.

As tests/test_web.py: skipped without Chromium on a developer's machine, failed under CI=true.
One person is added with real photos through the page, listed, and deleted again; what the
page shows is checked against what the API and the published versions say.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.artifact.manifest import load_manifest, resolve_version_dir
from harness.trainer import trainer_env
from tests.conftest import LabelledPhoto
from tests.images import encode, no_face_image
from tests.server import running_server
from tests.test_enrolment import AUTH, KEY, trainer_settings
from tests.test_web import ANSWER_MS, DESKTOP, OUTPUT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trainer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("people-page")
    OUTPUT.mkdir(exist_ok=True)
    env = trainer_env(trainer_settings(root))
    with running_server(OUTPUT / "people-page-trainer.log", module="enrolment", **env) as base:
        yield base, root


def test_people_are_added_listed_and_deleted_from_the_page(
    browser,
    trainer: tuple[str, Path],
    single_face_photos: list[LabelledPhoto],
) -> None:
    base, root = trainer
    person = single_face_photos[0]
    photos = [p for p in single_face_photos if p.label == person.label][:2]
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(ANSWER_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(base + "/people")
    page.fill("#api-key", KEY)
    page.click("#key-form button")
    page.wait_for_selector("#model-line:has-text('0 people')")

    page.fill("#person-id", "page-person")
    page.fill("#person-name", "Page Person")
    files = [{"name": p.path.name, "mimeType": "image/jpeg", "buffer": p.path.read_bytes()} for p in photos]
    files.append({"name": "blank.png", "mimeType": "image/png", "buffer": encode(no_face_image(), "PNG")})
    page.set_input_files("#person-photos", files=files)
    page.click("#add")
    page.wait_for_selector("#message:has-text('is published')")
    results = page.locator("#photo-results li").all_inner_texts()
    assert results == [*(f"{p.path.name}: face used" for p in photos), "blank.png: no face"]
    row = page.locator("tr[data-person='page-person']")
    assert row.locator("td").all_inner_texts()[:3] == ["page-person", "Page Person", "2"]
    version = resolve_version_dir(root / "artifacts", "svm").name
    assert page.locator("#model-line").inner_text() == f"1 people; model {version}"
    assert load_manifest(root / "artifacts" / "svm" / version).class_ids == ["page-person"]

    page.on("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Delete Page Person and every photo of them").click()
    page.wait_for_selector("#message:has-text('Deleted Page Person (2 photos)')")
    page.wait_for_selector("#model-line:has-text('0 people')")
    assert httpx.get(f"{base}/v1/people", headers=AUTH, timeout=10).json()["people"] == []
    assert not (root / "artifacts" / "svm" / version).exists()
    page.screenshot(path=str(OUTPUT / "people-page.png"), full_page=True)
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def test_a_wrong_key_says_why(browser, trainer: tuple[str, Path]) -> None:
    base, _ = trainer
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.goto(base + "/people")
    page.fill("#api-key", "not-the-key")
    page.click("#key-form button")
    page.wait_for_selector("#model-line:has-text('Cannot list people')")
    assert "X-API-Key" in page.locator("#model-line").inner_text()
    context.close()
