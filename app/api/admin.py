"""Operations routes: Prometheus metrics and hot model reload."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field

from app.api.deps import MetricsDep, ModelHostDep
from app.api.problems import ProblemError, problem_responses
from app.api.schemas import ModelRef

router = APIRouter()


class ReloadRequest(BaseModel):
    version: str | None = Field(
        None, description="Version to load; default: MODEL_VERSION if set, else what LATEST names now"
    )


@router.post(
    "/v1/models/reload",
    response_model=ModelRef,
    tags=["models"],
    summary="Load a model version and swap it in without a restart",
    responses=problem_responses(400, 401, 409),
)
async def reload_model(host: ModelHostDep, body: ReloadRequest | None = None) -> ModelRef:
    """Requests in flight finish on the old model; if the new one fails to load, the old one keeps serving."""
    version = body.version if body else None
    try:
        model = await asyncio.get_running_loop().run_in_executor(None, host.load, version)
    except Exception as exc:
        raise ProblemError(409, f"the model was not swapped: {exc}") from exc
    return ModelRef(backend=model.manifest.backend, version=model.manifest.version)


@router.get("/metrics", include_in_schema=False)
async def metrics(metrics: MetricsDep) -> Response:
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
