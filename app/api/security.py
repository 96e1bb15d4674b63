"""Optional API key: with ``API_KEY`` set, inference and admin routes need ``X-API-Key``.

Health, metrics, the docs and the web page stay open, so orchestration and
scrapers need no secret. The key is compared in constant time.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import FastAPI, Request, Security
from fastapi.security import APIKeyHeader

from app.api.deps import SettingsDep
from app.api.problems import PROBLEM_JSON, ProblemError
from app.api.seed_compat import SEED_CLASSIFY_PATH

PROTECTED_PREFIXES = ("/v1/", SEED_CLASSIFY_PATH)

_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="Required when the server sets API_KEY"
)


async def require_api_key(
    request: Request,
    settings: SettingsDep,
    key: Annotated[str | None, Security(_header)],
) -> None:
    expected = settings.api_key
    if expected is None or not request.url.path.startswith(PROTECTED_PREFIXES):
        return
    if key is None or not hmac.compare_digest(key.encode(), expected.get_secret_value().encode()):
        raise ProblemError(401, "a valid X-API-Key header is required", {"WWW-Authenticate": "APIKey"})


def document_api_key(app: FastAPI) -> None:
    """Make ``/openapi.json`` say what this server enforces.

    FastAPI marks every operation of an app-wide security dependency as needing the key,
    health checks included, even when ``API_KEY`` is unset. The document instead lists the
    key (and its 401) on the protected routes only when the server has a key, and not at all
    when it has none.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        enforced = app.state.settings.api_key is not None
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                if enforced and path.startswith(PROTECTED_PREFIXES):
                    operation["responses"].setdefault(
                        "401",
                        {
                            "description": "Unauthorized",
                            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
                        },
                    )
                else:
                    operation.pop("security", None)
        if not enforced:
            schema.get("components", {}).pop("securitySchemes", None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
