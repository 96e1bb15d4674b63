"""The web page at ``/`` and its assets at ``/static``, served by the app itself.

The page is plain HTML, CSS and JS from ``app/static``; its Content-Security-Policy
lets it load nothing but this origin, so it works offline and cannot pull in a CDN. The
one exception is the trainer, when ``TRAINER_URL`` is set: the page may send it corrections.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import HttpUrl

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


def origin(url: HttpUrl) -> str:
    """``scheme://host:port`` of a URL: what a Content-Security-Policy source names."""
    return f"{url.scheme}://{url.host}:{url.port}"


def page_csp(connect: tuple[str, ...] = ()) -> str:
    """Only this origin: scripts, styles, fetches and images (plus the photo's blob: preview);
    ``connect`` adds origins the page may also fetch from."""
    sources = " ".join(("'self'", *connect))
    return (
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
        f"connect-src {sources}; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    )


def install_web(
    app: FastAPI,
    directory: Path = STATIC_DIR,
    page: str = "index.html",
    paths: tuple[str, ...] = ("/",),
    connect: tuple[str, ...] = (),
) -> None:
    """Serve ``directory/page`` at each of ``paths`` and ``directory`` at ``/static``.

    The trainer's people page (``enrolment``) is served the same way, under the same policy.
    ``connect``: other origins the page may fetch from (the trainer, for the classify page).
    """
    app.mount("/static", StaticFiles(directory=directory), name="static")
    policy = page_csp(connect)

    async def serve_page() -> FileResponse:
        return FileResponse(
            directory / page,
            media_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": policy, "Cache-Control": "no-cache"},
        )

    for path in paths:
        app.add_api_route(path, serve_page, methods=["GET"], include_in_schema=False)
