"""The HTTP routes: classify, model info, health."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse

from app.api.deps import AdmissionDep, InferenceDep, ModelHostDep, ReadyModelDep, SettingsDep
from app.api.problems import ProblemError, problem_response, problem_responses
from app.api.schemas import (
    BoxOut,
    ClassifyResponse,
    ClassOut,
    CorrectionRef,
    FaceOut,
    Health,
    ImageSize,
    ModelInfo,
    ModelRef,
    PageSettings,
)
from app.backends import describe_model
from app.model.recognizer import Recognition, Recognizer

router = APIRouter()

#: The route that classifies an uploaded photo; admission control keys on it (``app.main``).
CLASSIFY_PATH = "/v1/classify"


@router.post(
    CLASSIFY_PATH,
    response_model=ClassifyResponse,
    summary="Find and classify every face in an image",
    responses=problem_responses(400, 401, 413, 415, 422, 503),
    tags=["classify"],
)
async def classify(
    request: Request,
    model: ReadyModelDep,
    inference: InferenceDep,
    file: Annotated[UploadFile, File(description="A JPEG, PNG, WebP, BMP, TIFF or GIF image")],
    thorough: Annotated[
        bool,
        Query(
            description="Search harder for small and distant faces (down to about 10 px high "
            "instead of 20): several times slower on large photos"
        ),
    ] = False,
) -> ClassifyResponse:
    form = await request.form()
    if len(form.getlist("file")) != 1:
        raise ProblemError(422, "send exactly one image in the 'file' field")
    result = await inference.recognize_bytes(request, model, await file.read(), thorough)
    return to_response(model, result)


def to_response(model: Recognizer, result: Recognition) -> ClassifyResponse:
    manifest = model.manifest
    return ClassifyResponse(
        model=ModelRef(backend=manifest.backend, version=manifest.version),
        image=ImageSize(width=result.width, height=result.height),
        faces=[
            FaceOut(
                box=BoxOut(**f.box.as_dict()),
                label=f.label,
                confidence=round(f.confidence, 6),
                probabilities={k: round(v, 6) for k, v in f.probabilities.items()},
                quality=f.quality,
                correction=CorrectionRef(verdict=f.correction.verdict, person=f.correction.person)
                if f.correction
                else None,
            )
            for f in result.faces
        ],
        faces_truncated=result.faces_truncated,
    )


@router.get(
    "/v1/models",
    response_model=ModelInfo,
    responses=problem_responses(503),
    tags=["models"],
    summary="The model being served: classes, settings and test metrics",
)
async def model_info(model: ReadyModelDep) -> ModelInfo:
    m = model.manifest
    return ModelInfo(
        backend=m.backend,
        architecture=describe_model(m),
        version=m.version,
        created=m.created,
        classes=[
            ClassOut(
                id=c.id,
                name=c.name,
                character=c.character,
                picture_url=f"/classes/{c.id}/picture" if c.picture else None,
            )
            for c in m.classes
        ],
        detector=model.detector.name,
        features=m.features.name,
        unknown_threshold=model.unknown.threshold if model.unknown else None,
        metrics=m.metrics,
    )


@router.get(
    "/classes/{class_id}/picture",
    tags=["models"],
    response_class=FileResponse,
    responses=problem_responses(404, 503),
    summary="The picture of one class, from the artifact",
)
async def class_picture(class_id: str, model: ReadyModelDep) -> FileResponse:
    """Outside /v1 and never behind the API key: the web page shows it with a plain <img>.

    One model gives both the manifest entry and the folder, so they belong together.
    """
    info = next((c for c in model.manifest.classes if c.id == class_id and c.picture), None)
    path = model.version_dir / info.picture if info and info.picture and model.version_dir else None
    if path is None or not path.is_file():
        raise ProblemError(404, f"class {class_id!r} has no picture")
    return FileResponse(path, media_type="image/jpeg")


@router.get(
    "/page-settings",
    response_model=PageSettings,
    tags=["web"],
    summary="What the web page needs besides the model: where the trainer is, if anywhere",
)
async def page_settings(settings: SettingsDep) -> PageSettings:
    """Open, as the page itself is: it holds no secret, only where corrections go."""
    url = settings.trainer_url
    return PageSettings(trainer_url=str(url).rstrip("/") if url else None)


@router.get("/livez", response_model=Health, tags=["health"], summary="The process is up")
async def livez() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    tags=["health"],
    responses=problem_responses(503),
    summary="The model is loaded and warmed up",
)
@router.get("/healthz", response_model=Health, tags=["health"], include_in_schema=False)
async def readyz(host: ModelHostDep, admission: AdmissionDep) -> Health | JSONResponse:
    if admission.draining:
        return problem_response(503, "shutting down")
    if host.current is None:
        return problem_response(503, f"not ready: {host.error}")
    m = host.current.manifest
    return Health(status="ok", detail=f"{m.backend}/{m.version}")
