"""The web page at ``/`` and its assets at ``/static``, served by the app itself.

The page is plain HTML, CSS and JS from ``app/static``; its Content-Security-Policy
lets it load nothing but this origin, so it works offline and cannot pull in a CDN.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

#: Only this origin: scripts, styles, fetches and images (plus the photo's blob: preview).
PAGE_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def install_web(
    app: FastAPI, directory: Path = STATIC_DIR, page: str = "index.html", paths: tuple[str, ...] = ("/",)
) -> None:
    """Serve ``directory/page`` at each of ``paths`` and ``directory`` at ``/static``.

    The trainer's people page (``enrolment``) is served the same way, under the same policy.
    """
    app.mount("/static", StaticFiles(directory=directory), name="static")

    async def serve_page() -> FileResponse:
        return FileResponse(
            directory / page,
            media_type="text/html; charset=utf-8",
            headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-cache"},
        )

    for path in paths:
        app.add_api_route(path, serve_page, methods=["GET"], include_in_schema=False)
