"""Typed FastAPI dependencies: a route's signature says which parts of the service it uses.

``create_app`` builds one of each part (settings, metrics, model host, admission, the
inference threads) and keeps it on ``app.state``; the functions here are its only
readers. A test swaps a part with ``app.dependency_overrides[model_host] = ...``.

They are ``async def`` although none awaits anything: FastAPI runs a plain ``def``
dependency on its thread pool, so each would cost a classify request a thread hand-off
(docs/benchmarks.md, issue 14's third session).
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Annotated

from fastapi import Depends, Request

from app.api.admission import Admission
from app.api.inference import Inference
from app.api.problems import ProblemError
from app.config import Settings
from app.model.host import ModelHost
from app.model.recognizer import Recognizer
from app.service.metrics import Metrics


async def settings(request: Request) -> Settings:
    return request.app.state.settings


async def metrics(request: Request) -> Metrics:
    return request.app.state.metrics


async def model_host(request: Request) -> ModelHost:
    return request.app.state.model_host


async def admission(request: Request) -> Admission:
    return request.app.state.admission


async def executor(request: Request) -> Executor:
    """The inference threads; created by the lifespan, so only there while the app runs."""
    return request.app.state.executor


SettingsDep = Annotated[Settings, Depends(settings)]
MetricsDep = Annotated[Metrics, Depends(metrics)]
ModelHostDep = Annotated[ModelHost, Depends(model_host)]
AdmissionDep = Annotated[Admission, Depends(admission)]
ExecutorDep = Annotated[Executor, Depends(executor)]


async def ready_model(host: ModelHostDep) -> Recognizer:
    """The served model, or a 503 problem while it is still loading (or failed to load).

    A request reads the model once, here, so all of its answer comes from one version
    even when a reload swaps in another meanwhile.
    """
    model = host.current
    if model is None:
        raise ProblemError(503, f"the model is not ready: {host.error}", {"Retry-After": "5"})
    return model


async def inference(
    settings: SettingsDep, metrics: MetricsDep, admission: AdmissionDep, executor: ExecutorDep
) -> Inference:
    return Inference(settings, metrics, admission, executor)


ReadyModelDep = Annotated[Recognizer, Depends(ready_model)]
InferenceDep = Annotated[Inference, Depends(inference)]
