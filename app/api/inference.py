"""Run one uploaded photo through the served model, off the event loop.

Every route that classifies bytes (``/v1/classify`` and the seed's ``/classify_image``)
goes through here, so they decode the same way, share the inference threads, their
admission control (``app.api.admission``) and the time limit, and give the same answer
for the same photo.
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass

from fastapi import Request

from app.api.admission import Admission, StopToken
from app.api.problems import ProblemError, over_limit_detail
from app.config import Settings
from app.model.recognizer import Recognition, Recognizer
from app.service.metrics import Metrics


@dataclass(frozen=True)
class Inference:
    """The parts a photo passes through on its way to an answer (see ``app.api.deps.inference``)."""

    settings: Settings
    metrics: Metrics
    admission: Admission
    executor: Executor

    async def recognize_bytes(
        self, request: Request, model: Recognizer, data: bytes, thorough: bool = False
    ) -> Recognition:
        """Decode ``data`` and find and classify every face, on one of the app's inference threads.

        ``request`` is watched for the client leaving; ``thorough`` asks the detector for its
        slower search for small faces.

        Decode errors propagate as ``ImageError`` (mapped to 400/413/415 problems). A full
        worker, running past ``request_timeout_s`` and shutting down are 503 problems with
        ``Retry-After``, as the client may simply retry. Stage timings and the number of faces
        go to the metrics.
        """
        settings, metrics = self.settings, self.metrics
        if len(data) > settings.max_upload_bytes:  # the body limit leaves room for the multipart envelope
            raise ProblemError(413, over_limit_detail(settings.max_upload_bytes))

        def work(token: StopToken) -> Recognition:
            token.check()  # the client may have left while this waited in the executor's hand-off

            def observe(stage: str, seconds: float) -> None:
                metrics.observe_stage(stage, seconds)
                token.check()  # between stages: stop work whose answer nobody waits for any more

            return model.recognize_bytes(data, settings.max_pixels, observe, thorough)

        result = await self.admission.run(request, self.executor, work, settings.request_timeout_s)
        metrics.faces.observe(len(result.faces))
        return result
