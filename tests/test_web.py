"""The web page in a real browser: Debian's Chromium driven by Playwright, against a real uvicorn.

Chromium comes from apt (``scripts/ci-install-test-packages.sh``); Playwright's own browser
download cannot work here. Without it these tests skip on a developer's machine and fail
in CI (``CI=true``), so CI can never pass by not running them. A failing test leaves a
screenshot in ``test-output/``; ``test_readme_screenshot`` draws ``docs/screenshot.png`` (tests/pictures.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.images import encode, no_face_image
from tests.pictures import OUTPUT, docs_picture
from tests.server import running_server

pytestmark = pytest.mark.slow

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}
#: How long the page may take to show an answer: a classification on a busy 2-core CI machine.
ANSWER_MS = 30_000


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    OUTPUT.mkdir(exist_ok=True)
    with running_server(OUTPUT / "web-server.log") as base:
        yield base


@pytest.fixture(scope="module")
def unready_server() -> Iterator[str]:
    """A real service whose model cannot load (no such version): up, but 503 on every model route."""
    OUTPUT.mkdir(exist_ok=True)
    log = OUTPUT / "web-unready-server.log"
    with running_server(log, timeout=60, wait_for="/livez", MODEL_VERSION="no-such-version") as base:
        assert httpx.get(f"{base}/readyz", timeout=5).status_code == 503
        yield base


def _open(
    browser, request: pytest.FixtureRequest, server: str, viewport: dict, model_line: str = "Knows"
) -> Iterator[object]:
    """A fresh page on the service; on a failed test, a full-page screenshot in test-output/."""
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(ANSWER_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    failed_before = request.session.testsfailed
    page.goto(server + "/")
    # The names and pictures come from /v1/models; wait for them so cards show display names.
    page.wait_for_selector(f"#model-line:has-text('{model_line}')")
    yield page
    # The call phase's report is counted before fixtures are torn down, so this sees it.
    if request.session.testsfailed > failed_before:
        OUTPUT.mkdir(exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", request.node.nodeid.split("::")[-1])
        page.screenshot(path=str(OUTPUT / f"{name}.png"), full_page=True)
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def page(browser, request: pytest.FixtureRequest, server: str) -> Iterator[object]:
    yield from _open(browser, request, server, DESKTOP)


@pytest.fixture
def phone_page(browser, request: pytest.FixtureRequest, server: str) -> Iterator[object]:
    yield from _open(browser, request, server, PHONE)


@pytest.fixture
def unready_page(browser, request: pytest.FixtureRequest, unready_server: str) -> Iterator[object]:
    yield from _open(browser, request, unready_server, DESKTOP, model_line="loading")


def upload(page, name: str, data: bytes, mime: str) -> None:
    page.set_input_files("#file", files=[{"name": name, "mimeType": mime, "buffer": data}])


def classify(page, name: str, data: bytes, mime: str = "image/jpeg") -> None:
    """Choose a file, click Classify and wait until the page has shown the answer."""
    upload(page, name, data, mime)
    page.click("#classify")
    page.wait_for_selector("#message:not([hidden])")
    page.wait_for_selector("#classify:has-text('Classify')")


def api_answer(server: str, data: bytes) -> dict:
    response = httpx.post(f"{server}/v1/classify", files={"file": ("a.jpg", data, "image/jpeg")}, timeout=60)
    response.raise_for_status()
    return response.json()


def display_names(server: str) -> dict[str, str]:
    classes = httpx.get(f"{server}/v1/models", timeout=10).json()["classes"]
    names = {c["id"]: c["name"] + (f" as {c['character']}" if c.get("character") else "") for c in classes}
    return {**names, "unknown": "Unknown"}


def rect(page, selector: str) -> dict:
    return page.eval_on_selector(
        selector,
        "e => { const r = e.getBoundingClientRect(); return {x: r.x, y: r.y, w: r.width, h: r.height}; }",
    )


def test_two_faces_are_boxed_and_carded_as_the_api_says(
    page, server: str, two_face_composite: tuple[bytes, list[str]]
) -> None:
    photo, _ = two_face_composite
    answer = api_answer(server, photo)
    labels = [f["label"] for f in answer["faces"]]
    assert len(labels) == 2, answer

    classify(page, "two.jpg", photo)

    assert page.get_attribute("#message", "data-kind") == "ok"
    assert "Found 2 faces" in page.inner_text("#message")
    boxes = page.locator(".face-box")
    cards = page.locator(".face-card")
    assert boxes.count() == 2
    assert cards.count() == 2
    # The labels shown are the API's for the same bytes (the default model is weak, so
    # the truth may differ; what is checked is that the page shows what the API said).
    assert [boxes.nth(i).get_attribute("data-label") for i in range(2)] == labels
    assert [cards.nth(i).get_attribute("data-label") for i in range(2)] == labels
    names = display_names(server)
    for i, label in enumerate(labels):
        card = cards.nth(i)
        assert names[label] in card.locator(".face-name").text_content()
        assert card.locator(".bar-row").count() == len(answer["faces"][i]["probabilities"])
        if label == "unknown":
            assert card.locator("img").count() == 0
        else:
            assert card.locator("img.class-picture").get_attribute("alt").endswith(names[label])
            shown_percent = re.search(r"([\d.]+)% confident", card.inner_text())
            assert shown_percent, card.inner_text()
            assert float(shown_percent[1]) == pytest.approx(100 * answer["faces"][i]["confidence"], abs=0.051)
    # Only the selected face's card shows.
    assert cards.nth(0).is_visible()
    assert not cards.nth(1).is_visible()

    # Each box sits where the API put the face, scaled to the photo as displayed.
    shown = rect(page, "#photo")
    scale = shown["w"] / answer["image"]["width"]
    assert shown["h"] / answer["image"]["height"] == pytest.approx(scale, rel=0.01)
    for i, face in enumerate(answer["faces"]):
        drawn = boxes.nth(i).bounding_box()
        assert drawn["x"] - shown["x"] == pytest.approx(face["box"]["x"] * scale, abs=2)
        assert drawn["y"] - shown["y"] == pytest.approx(face["box"]["y"] * scale, abs=2)
        assert drawn["width"] == pytest.approx(face["box"]["width"] * scale, abs=2)
        assert drawn["height"] == pytest.approx(face["box"]["height"] * scale, abs=2)


def test_faces_change_with_keys_buttons_and_clicks(page, two_face_composite: tuple[bytes, list[str]]) -> None:
    photo, _ = two_face_composite
    upload(page, "two.jpg", photo, "image/jpeg")
    # Keyboard only: focus the button and press Enter.
    page.focus("#classify")
    page.keyboard.press("Enter")
    page.wait_for_selector(".face-card")
    cards = page.locator(".face-card")
    boxes = page.locator(".face-box")

    def shown() -> int:
        assert [cards.nth(i).is_visible() for i in range(2)].count(True) == 1
        index = 0 if cards.nth(0).is_visible() else 1
        assert boxes.nth(index).get_attribute("aria-pressed") == "true"
        assert page.inner_text("#face-counter") == f"Face {index + 1} of 2"
        return index

    assert shown() == 0
    page.keyboard.press("ArrowRight")
    assert shown() == 1
    page.keyboard.press("ArrowRight")  # wraps around
    assert shown() == 0
    page.keyboard.press("ArrowLeft")
    assert shown() == 1
    page.click("#back")
    assert shown() == 0
    page.click("#next")
    assert shown() == 1
    boxes.nth(0).click()
    assert shown() == 0
    # Boxes are buttons: Tab reaches them, and arrows move the focus along with the face.
    boxes.nth(0).focus()
    page.keyboard.press("ArrowRight")
    assert shown() == 1
    assert page.evaluate("document.activeElement.dataset.index") == "1"
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    assert shown() == 0


def test_a_photo_without_faces_says_so(page) -> None:
    classify(page, "shapes.png", encode(no_face_image(), "PNG"), "image/png")

    assert page.get_attribute("#message", "data-kind") == "no-face"
    assert "No face found" in page.inner_text("#message")
    assert page.locator(".face-card").count() == 0
    assert page.locator(".face-box").count() == 0
    assert page.is_hidden("#results")


def test_an_unsupported_file_says_why(page, server: str) -> None:
    data = b"name,age\nfrodo,50\n"
    detail = httpx.post(f"{server}/v1/classify", files={"file": ("a.csv", data, "text/csv")}).json()["detail"]

    classify(page, "people.csv", data, "text/csv")

    assert page.get_attribute("#message", "data-kind") == "unsupported"
    message = page.inner_text("#message")
    assert "Unsupported file" in message
    assert detail.lower() in message.lower()  # the service's own reason, from the problem+json body
    assert page.is_visible("#no-preview")  # the browser could not show it either


def test_a_file_over_the_limit_says_too_large(page) -> None:
    # 11 MB of JPEG-looking bytes: over the 10 MB limit the service enforces while reading.
    data = b"\xff\xd8\xff\xe0" + os.urandom(11 * 1024 * 1024)

    classify(page, "huge.jpg", data)

    assert page.get_attribute("#message", "data-kind") == "too-large"
    assert "too large" in page.inner_text("#message")


def test_an_unreachable_service_says_so(page, two_face_composite: tuple[bytes, list[str]]) -> None:
    upload(page, "two.jpg", two_face_composite[0], "image/jpeg")
    page.context.set_offline(True)  # the browser's own network switch: fetch gets no answer at all
    try:
        page.click("#classify")
        page.wait_for_selector("#message[data-kind='unreachable']")
    finally:
        page.context.set_offline(False)
    assert "Cannot reach the service" in page.inner_text("#message")
    assert page.is_enabled("#classify")  # the user can try again


def test_a_service_that_is_not_ready_says_so(
    unready_page, two_face_composite: tuple[bytes, list[str]]
) -> None:
    page = unready_page
    classify(page, "two.jpg", two_face_composite[0])

    assert page.get_attribute("#message", "data-kind") == "not-ready"
    assert "not ready" in page.inner_text("#message")


def test_phone_width_has_no_horizontal_overflow(
    phone_page, two_face_composite: tuple[bytes, list[str]]
) -> None:
    page = phone_page
    classify(page, "two.jpg", two_face_composite[0])
    page.wait_for_selector(".face-card")

    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
    for selector in ["#photo", "#dropzone", ".face-card:not([hidden])", ".face-nav"]:
        box = rect(page, selector)
        assert box["x"] >= 0 and box["x"] + box["w"] <= PHONE["width"] + 0.5, selector
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "phone.png"), full_page=True)


def test_readme_screenshot(page, two_face_composite: tuple[bytes, list[str]]) -> None:
    """The picture in the README: the page after classifying a photo of two people."""
    classify(page, "two-hobbits.jpg", two_face_composite[0])
    page.wait_for_selector(".face-card")
    # Keep the screenshot free of the focus ring and the mouse hover.
    page.evaluate("document.activeElement.blur()")
    page.mouse.move(0, 0)
    target = docs_picture("screenshot.png")
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 10_000


@pytest.fixture(scope="module")
def keyed_server() -> Iterator[str]:
    OUTPUT.mkdir(exist_ok=True)
    with running_server(OUTPUT / "web-keyed-server.log", API_KEY="s3cret") as base:
        yield base


def test_a_service_with_an_api_key_asks_for_it_once(browser, keyed_server: str) -> None:
    """The page asks for the key on the first 401 and sends it with every later call."""
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(ANSWER_MS)
    asked: list[str] = []

    def answer(dialog) -> None:
        asked.append(dialog.message)
        dialog.accept("s3cret")

    page.on("dialog", answer)
    try:
        page.goto(keyed_server + "/")
        page.wait_for_selector("#model-line:has-text('Knows')")
        classify(page, "shapes.png", encode(no_face_image(), "PNG"), "image/png")
        assert page.get_attribute("#message", "data-kind") == "no-face"
        assert len(asked) == 1 and "API key" in asked[0]
    finally:
        context.close()
