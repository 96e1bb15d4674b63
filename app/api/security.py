"""Optional API key: with ``API_KEY`` set, inference and admin routes need ``X-API-Key``.

Health, metrics, the docs and the web page stay open, so orchestration and
scrapers need no secret. The key is compared in constant time.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Request, Security
from fastapi.security import APIKeyHeader

from app.api.problems import ProblemError

PROTECTED_PREFIXES = ("/v1/", "/classify_image")

_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="Required when the server sets API_KEY"
)


async def require_api_key(request: Request, key: Annotated[str | None, Security(_header)]) -> None:
    expected = request.app.state.settings.api_key
    if expected is None or not request.url.path.startswith(PROTECTED_PREFIXES):
        return
    if key is None or not hmac.compare_digest(key.encode(), expected.get_secret_value().encode()):
        raise ProblemError(401, "a valid X-API-Key header is required", {"WWW-Authenticate": "APIKey"})
