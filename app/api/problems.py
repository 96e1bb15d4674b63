"""RFC 9457 problem details: every error the service returns has this machine-readable body."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.pipeline.errors import ImageError, ImageTooLarge, UndecodableImage, UnsupportedImageType

PROBLEM_JSON = "application/problem+json"

_IMAGE_ERROR_STATUS: dict[type[ImageError], int] = {
    UndecodableImage: 400,
    ImageTooLarge: 413,
    UnsupportedImageType: 415,
}


class Problem(BaseModel):
    type: str = Field("about:blank", description="A URI naming the kind of problem")
    title: str = Field(description="Short, human-readable summary of the kind of problem")
    status: int = Field(description="The HTTP status code")
    detail: str | None = Field(None, description="What went wrong with this request")
    errors: list[dict] | None = Field(None, description="Field-level validation errors, for 422")


class ProblemError(Exception):
    """Raise from a route to answer with a problem; ``headers`` are added to the response."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


def over_limit_detail(max_bytes: int) -> str:
    """The one wording of the byte limit, whichever layer enforces it."""
    return f"the upload is larger than the {max_bytes / (1024 * 1024):g} MB limit"


def problem_response(
    status: int,
    detail: str | None = None,
    *,
    errors: list[dict] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Problem(title=HTTPStatus(status).phrase, status=status, detail=detail, errors=errors)
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, media_type=PROBLEM_JSON, headers=headers
    )


def problem_responses(*statuses: int) -> dict[int | str, dict]:
    """OpenAPI ``responses=`` entries documenting problem+json bodies for ``statuses``."""
    return {
        s: {"model": Problem, "description": HTTPStatus(s).phrase, "content": {PROBLEM_JSON: {}}}
        for s in statuses
    }


def install_problem_handlers(app: FastAPI) -> None:
    """Map expected exceptions to problem+json responses.

    Anything else is a bug; RequestTelemetry logs it and answers a 500 problem, so no
    traceback ever reaches a client.
    """

    @app.exception_handler(ProblemError)
    async def _problem(_: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(exc.status, exc.detail, headers=exc.headers)

    @app.exception_handler(ImageError)
    async def _image(_: Request, exc: ImageError) -> JSONResponse:
        return problem_response(_IMAGE_ERROR_STATUS.get(type(exc), 400), str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        return problem_response(422, detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem_response(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))


def document_problems(app: FastAPI) -> None:
    """Make ``/openapi.json`` describe error bodies as they are sent: problem+json with the Problem schema.

    FastAPI documents its own 422 as ``application/json`` ``HTTPValidationError`` and puts a
    ``responses=`` model under ``application/json``; this service answers every error with
    ``application/problem+json`` (see the handlers above), so the document says so.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                for status, response in operation.get("responses", {}).items():
                    if status.isdigit() and int(status) >= 400:
                        response["content"] = problem
                        response["description"] = HTTPStatus(int(status)).phrase
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.setdefault("Problem", Problem.model_json_schema())
        text = json.dumps(schema["paths"])
        for unused in ("HTTPValidationError", "ValidationError"):
            if f'/{unused}"' not in text:
                components.pop(unused, None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
