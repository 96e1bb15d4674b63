"""Corrections from the classify page, in Debian's Chromium (Playwright), against real processes.

A trainer seeded with the committed default model (it adopts its five people) and a classify
service following the trainer's LATEST, both real uvicorn processes; the page is the classify
service's, with ``TRAINER_URL`` set, and the trainer allows its origin. On a held-out photo the
page says "This is not <the person>", then "This is <someone new>"; after each, the page shows
the new version's answer. ``docs/corrections.png`` is the page after the second correction.
As tests/test_web.py: skipped without Chromium on a developer's machine, failed under CI=true.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.processes import free_port
from harness.trainer import trainer_env
from tests.conftest import ARTIFACTS, LabelledPhoto
from tests.pictures import docs_picture
from tests.server import running_server
from tests.test_enrolment import AUTH, KEY, trainer_settings
from tests.test_web import ANSWER_MS, DESKTOP, OUTPUT, classify

pytestmark = pytest.mark.slow

#: How long a correction may take to show its new answer: a build, then a swap, on a busy machine.
TAUGHT_MS = 120_000


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """(classify URL, trainer URL, the artifacts folder they share)."""
    root = tmp_path_factory.mktemp("corrections-page")
    OUTPUT.mkdir(exist_ok=True)
    page_port = free_port()
    env = trainer_env(trainer_settings(root, seed_dir=ARTIFACTS))
    env |= {"ENROL_SEED_DIR": str(ARTIFACTS), "ENROL_ALLOWED_ORIGINS": f"http://127.0.0.1:{page_port}"}
    with (
        running_server(OUTPUT / "corrections-trainer.log", module="enrolment", **env) as trainer,
        running_server(
            OUTPUT / "corrections-classify.log",
            port=page_port,
            ARTIFACTS_DIR=str(root / "artifacts"),
            MODEL_WATCH_INTERVAL_S="0.5",
            TRAINER_URL=trainer,
        ) as page,
    ):
        yield page, trainer, root


def test_a_face_is_corrected_from_the_page(
    browser, services: tuple[str, str, Path], single_face_photos: list[LabelledPhoto]
) -> None:
    base, trainer, _ = services
    photo = single_face_photos[0]
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(ANSWER_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    asked: list[str] = []

    def answer(dialog) -> None:
        asked.append(dialog.message)
        dialog.accept(KEY)

    page.on("dialog", answer)
    page.goto(base + "/")
    page.wait_for_selector("#model-line:has-text('Knows 5 people')")
    classify(page, photo.path.name, photo.path.read_bytes())
    card = page.locator(".face-card").first
    assert card.get_attribute("data-label") == photo.label
    name = httpx.get(f"{base}/v1/models", timeout=10).json()["classes"]
    display = next(c["name"] for c in name if c["id"] == photo.label)

    card.get_by_role("button", name=f"This is not {display}").click()
    page.wait_for_selector("#message:has-text('is live')", timeout=TAUGHT_MS)
    card = page.locator(".face-card").first
    assert card.get_attribute("data-label") == "unknown"
    assert f"said not to be {display}" in card.locator(".corrected").inner_text()
    assert len(asked) == 1 and "API key" in asked[0]

    card.get_by_label("Not right? This is").select_option(label="someone new…")
    card.get_by_label("The new person's name").fill("Page Person")
    card.get_by_role("button", name="Teach").click()
    page.wait_for_selector(".face-card[data-label='page_person']", timeout=TAUGHT_MS)
    assert len(asked) == 1, "the key is asked for once"
    page.wait_for_selector("#model-line:has-text('Knows 6 people')", timeout=TAUGHT_MS)
    people = httpx.get(f"{trainer}/v1/people/page_person", headers=AUTH, timeout=10).json()
    (added,) = people["photos"]
    assert added["source"] == "correction" and added["correction"]["answered"] == "unknown"
    negatives = httpx.get(f"{trainer}/v1/people/{photo.label}", headers=AUTH, timeout=10).json()["negatives"]
    assert [n["answered"] for n in negatives] == [photo.label]

    page.evaluate("document.activeElement.blur()")
    page.mouse.move(0, 0)
    target = docs_picture("corrections.png")
    page.screenshot(path=str(target), full_page=True)

    people_page_says_where_examples_came_from(page, trainer, photo.label)
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def people_page_says_where_examples_came_from(page, trainer: str, corrected: str) -> None:
    """The trainer's people page after the two corrections: adopted, corrected, created."""
    page.goto(trainer + "/people")
    page.fill("#api-key", KEY)
    page.click("#key-form button")
    page.wait_for_selector("#model-line:has-text('6 people')")
    row = page.locator(f"tr[data-person='{corrected}']").inner_text()
    assert "1 face marked not them" in row and "embeddings adopted from" in row
    assert "cannot be re-embedded" in row
    assert "1 from a correction" in page.locator("tr[data-person='page_person']").inner_text()
    assert page.locator("#blocked").is_hidden()
