"""The FastAPI application factory.

``python -m app serve`` runs it with the JSON logging and the HOST, PORT and WORKERS
settings; ``uvicorn --factory app.main:create_app`` also works, with uvicorn's own logging.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress

from fastapi import Depends, FastAPI

from app import __version__
from app.api.admin import router as admin_router
from app.api.admission import Admission, install_admission
from app.api.body_limit import BodySizeLimit
from app.api.problems import document_problems, install_problem_handlers
from app.api.routes import CLASSIFY_PATH, router
from app.api.security import document_api_key, require_api_key
from app.api.seed_compat import SEED_CLASSIFY_PATH
from app.api.seed_compat import router as seed_router
from app.api.telemetry import RequestTelemetry
from app.api.web import install_web, origin
from app.config import Settings, get_settings
from app.model.host import ModelHost
from app.service.metrics import Metrics
from app.service.shutdown import drain_on_termination

#: The routes that run a photo through the model, and so pass admission control.
CLASSIFY_PATHS = (CLASSIFY_PATH, SEED_CLASSIFY_PATH)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        executor = ThreadPoolExecutor(settings.inference_threads, thread_name_prefix="inference")
        app.state.executor = executor
        # Load in the background: /livez answers at once, /readyz turns 200 when the model is warm.
        loading = asyncio.get_running_loop().run_in_executor(executor, _load_quietly, app.state.model_host)
        if settings.workers > 1:
            # Uvicorn's workers share one socket and a worker accepts once its lifespan has started:
            # a worker the supervisor restarts must not take connections (and answer 503) while
            # the others could serve them, so it waits for its model first.
            await loading
        watcher = asyncio.create_task(_watch_pointer(app.state.model_host, settings.model_watch_interval_s))
        try:
            with drain_on_termination(app.state.admission, settings.shutdown_grace_s):
                yield
        finally:
            watcher.cancel()
            with suppress(Exception):
                await loading
            executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="hobbit-classifier",
        summary="Find every face in a photo and say who it is, or 'unknown'.",
        version=__version__,
        lifespan=lifespan,
        dependencies=[Depends(require_api_key)],
    )
    metrics = Metrics()
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.model_host = ModelHost(settings, on_load=metrics.set_model)
    install_problem_handlers(app)
    admission = Admission(settings.inference_threads, settings.max_queue, metrics, settings.max_queue_wait_s)
    install_admission(app, admission, CLASSIFY_PATHS, discard_within_s=settings.request_timeout_s)
    document_problems(app)
    document_api_key(app)
    app.include_router(router)
    app.include_router(admin_router)
    app.include_router(seed_router)
    install_web(app, connect=(origin(settings.trainer_url),) if settings.trainer_url else ())
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes)
    app.add_middleware(RequestTelemetry, metrics=metrics)  # outermost: sees every response, 413s included
    return app


async def _watch_pointer(host: ModelHost, interval: float) -> None:
    """Swap in the version ``LATEST`` names whenever it changes: new models go live without a restart."""
    if interval <= 0:
        return
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval)
        if host.pointer_moved():
            with suppress(Exception):  # logged by the host; the current model keeps serving
                await loop.run_in_executor(None, host.load)


def _load_quietly(host: ModelHost) -> None:
    """Load at start-up; a failure is logged and leaves /readyz at 503 instead of killing the process."""
    with suppress(Exception):
        host.load()
