"""The trainer service: the enrolment routes, its people page and health, as a FastAPI app.

Every ``/v1`` route needs ``X-API-Key``, and while ``API_KEY`` is unset they all answer
403: enrolment writes biometric data and publishes models, so it is never open by
default (the classify service's optional key, ``app.api.security``, checks the header).
Errors are problem+json through the classify service's handlers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, File, Form, Request, Response, UploadFile
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool

from app.api.body_limit import BodySizeLimit
from app.api.problems import (
    ProblemError,
    document_problems,
    install_problem_handlers,
    problem_response,
    problem_responses,
)
from app.api.schemas import Health
from app.api.security import document_api_key, require_api_key
from app.api.web import install_web
from app.model.corrections import Verdict
from app.pipeline.detect import Box
from enrolment.builder import BuildResult
from enrolment.records import CorrectionRequest, StoreError
from enrolment.schemas import (
    BuildOut,
    Changed,
    Corrected,
    CorrectionOut,
    Erased,
    PeopleOut,
    PersonCreated,
    PersonOut,
    PhotoResult,
    PhotosAdded,
    Undone,
)
from enrolment.service import Change, Enrolled, Enrolment
from enrolment.settings import EnrolmentSettings

PAGE_DIR = Path(__file__).resolve().parent / "static"


async def refuse_without_key(request: Request) -> None:
    """Enrolment is off until the operator sets API_KEY (then ``require_api_key`` checks it)."""
    if request.app.state.settings.api_key is None:
        raise ProblemError(403, "enrolment is disabled: start the trainer with API_KEY set")


def _enrolment(request: Request) -> Enrolment:
    return request.app.state.enrolment


Service = Annotated[Enrolment, Depends(_enrolment)]

router = APIRouter(
    prefix="/v1",
    tags=["enrolment"],
    dependencies=[Depends(refuse_without_key), Depends(require_api_key)],
    responses=problem_responses(401, 403),
)


async def _read(files: list[UploadFile]) -> list[tuple[str, bytes]]:
    return [(f.filename or "photo", await f.read()) for f in files]


def _build(response: Response, revision: int, result: BuildResult | None) -> BuildOut:
    """A change's build; 202 Accepted while it is still being built."""
    build = BuildOut.of(revision, result)
    if build.status == "pending":
        response.status_code = 202
    return build


async def _after(service: Enrolment, response: Response, revision: int) -> BuildOut:
    """The build of a change that made ``revision``, waited for up to ``ENROL_WAIT_S``."""
    return _build(response, revision, await run_in_threadpool(service.built, revision))


def _answer(response: Response, change: Change) -> BuildOut | None:
    """The build of a change that may have changed nothing (None then)."""
    return None if change.revision is None else _build(response, change.revision, change.build)


def _results(enrolled: list[Enrolled]) -> list[PhotoResult]:
    return [PhotoResult.of(e) for e in enrolled]


@router.post(
    "/people",
    status_code=201,
    response_model=PersonCreated,
    responses=problem_responses(409, 413, 415, 422),
    summary="Enrol a person (no photos yet)",
)
async def create_person(
    service: Service,
    id: Annotated[str, Form(description="Lower-case letters, digits, '.', '_', '-'; the class id")],
    name: Annotated[str, Form(min_length=1, max_length=200)],
    character: Annotated[str | None, Form(max_length=200)] = None,
    picture: Annotated[UploadFile | None, File(description="A picture shown for this person")] = None,
) -> PersonCreated:
    data = await picture.read() if picture is not None else None
    if data is not None:
        await run_in_threadpool(service.check_picture, data)
    person = await run_in_threadpool(service.store.add_person, id, name, character, data)
    return PersonCreated(person=PersonOut.of(person))


@router.get("/people", response_model=PeopleOut, summary="Everyone enrolled, with their photos")
async def list_people(service: Service) -> PeopleOut:
    people = await run_in_threadpool(service.store.people)
    last = service.builder.last
    return PeopleOut(
        people=[PersonOut.of(p) for p in people],
        revision=last.revision,
        version=last.version,
        blocked=service.blocked(people),
    )


@router.get("/people/{person_id}", response_model=PersonOut, responses=problem_responses(404))
async def get_person(service: Service, person_id: str) -> PersonOut:
    return PersonOut.of(await run_in_threadpool(service.store.person, person_id))


def _building_or_problems(*statuses: int) -> dict[int | str, dict]:
    """OpenAPI responses of a route that adds photos: 202 while its version builds, or problems."""
    return {
        **problem_responses(*statuses),
        202: {"model": PhotosAdded, "description": "Stored; the version is still building"},
    }


@router.post(
    "/people/{person_id}/photos",
    response_model=PhotosAdded,
    responses=_building_or_problems(404, 413, 422),
    summary="Add photos of a person (several per request), each with its own outcome",
)
async def add_photos(
    service: Service,
    response: Response,
    person_id: str,
    files: Annotated[list[UploadFile], File(description="One or more photos")],
) -> PhotosAdded:
    enrolled, change = await run_in_threadpool(service.add_photos, person_id, await _read(files))
    return PhotosAdded(photos=_results(enrolled), build=_answer(response, change))


@router.post(
    "/people/bulk",
    response_model=PhotosAdded,
    responses=_building_or_problems(400, 413, 422),
    summary="Bulk enrolment from a zip of <person id>/<photo> folders, with a result per file",
)
async def bulk(
    service: Service,
    response: Response,
    file: Annotated[UploadFile, File(description="A zip: one folder per person (classes.json optional)")],
) -> PhotosAdded:
    enrolled, change = await run_in_threadpool(service.enrol_zip, await file.read())
    return PhotosAdded(photos=_results(enrolled), build=_answer(response, change))


@router.delete(
    "/people/{person_id}/photos/{photo_id}",
    response_model=Changed,
    responses=problem_responses(404),
    summary="Remove one photo (and its cached embedding)",
)
async def delete_photo(service: Service, response: Response, person_id: str, photo_id: str) -> Changed:
    revision = await run_in_threadpool(service.store.delete_photo, person_id, photo_id)
    return Changed(build=await _after(service, response, revision))


@router.delete(
    "/people/{person_id}",
    response_model=Erased,
    responses=problem_responses(404),
    summary="Erase a person: photos, embeddings, and every model version that held them",
)
async def delete_person(service: Service, response: Response, person_id: str) -> Erased:
    revision, photos = await run_in_threadpool(service.store.delete_person, person_id)
    return Erased(person_id=person_id, photos=photos, build=await _after(service, response, revision))


@router.delete(
    "/people/{person_id}/seeded",
    response_model=Changed,
    responses=problem_responses(404),
    summary="Drop the reference embeddings a person was adopted with (their photos stay)",
)
async def drop_seeded(service: Service, response: Response, person_id: str) -> Changed:
    revision = await run_in_threadpool(service.store.drop_seeded, person_id)
    return Changed(build=await _after(service, response, revision))


@router.post(
    "/corrections",
    response_model=Corrected,
    responses={
        **problem_responses(400, 404, 409, 413, 415, 422),
        202: {"model": Corrected, "description": "Stored; the version is still building"},
    },
    summary="Correct one face of a classify answer: it is this person, or it is not",
)
async def correct(
    service: Service,
    response: Response,
    file: Annotated[UploadFile, File(description="The photo, as it was sent to /v1/classify")],
    person_id: Annotated[str, Form(description="Who the face is (verdict 'is') or is not ('is_not')")],
    verdict: Annotated[Verdict, Form()],
    x: Annotated[int, Form(ge=0, description="The face's box, as the classify answer gave it")],
    y: Annotated[int, Form(ge=0)],
    width: Annotated[int, Form(gt=0)],
    height: Annotated[int, Form(gt=0)],
    name: Annotated[
        str | None,
        Form(min_length=1, max_length=200, description="For someone new (verdict 'is'): enrol them"),
    ] = None,
    answered: Annotated[str | None, Form(max_length=200, description="What the service answered")] = None,
    model_version: Annotated[
        str | None, Form(max_length=200, description="The version that answered")
    ] = None,
) -> Corrected:
    request = CorrectionRequest(person_id, verdict, Box(x, y, width, height), name, answered, model_version)
    data = await file.read()
    record, created, revision = await run_in_threadpool(
        service.correct, file.filename or "photo", data, request
    )
    build = await _after(service, response, revision)
    return Corrected(correction=CorrectionOut.of(record), person_created=created, build=build)


@router.delete(
    "/corrections/{correction_id}",
    response_model=Undone,
    responses=problem_responses(404),
    summary="Undo a correction: its photo or its 'not this person' face is forgotten",
)
async def undo_correction(service: Service, response: Response, correction_id: str) -> Undone:
    record, revision = await run_in_threadpool(service.store.undo_correction, correction_id)
    return Undone(correction=CorrectionOut.of(record), build=await _after(service, response, revision))


@router.get("/builds/{revision}", response_model=BuildOut, responses=problem_responses(404))
async def build_status(service: Service, revision: int) -> BuildOut:
    """A change's build: the first retained version that holds it (or the newest, if that is gone)."""
    if not 0 < revision <= await run_in_threadpool(service.store.revision):
        raise ProblemError(404, f"no change made revision {revision}")
    result = service.builder.wait(revision, 0)
    if result is not None and result.error is None:
        versions = await run_in_threadpool(service.store.versions)  # newest first
        covering = [version for version, built in versions.items() if built >= revision]
        result = BuildResult(revision, covering[-1] if covering else result.version)
    return BuildOut.of(revision, result)


def create_enrolment_app(settings: EnrolmentSettings | None = None) -> FastAPI:
    settings = settings or EnrolmentSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.enrolment = await run_in_threadpool(Enrolment, settings)
        app.state.enrolment.start()
        try:
            yield
        finally:
            await run_in_threadpool(app.state.enrolment.close)

    app = FastAPI(
        title="hobbit-classifier trainer",
        summary="Enrol people; every change publishes a new model version for the classify service.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_problem_handlers(app)

    @app.exception_handler(StoreError)
    async def _store(_: Request, exc: StoreError) -> Response:
        return problem_response(exc.status, exc.detail)

    document_problems(app)
    document_api_key(app)
    app.include_router(router)
    install_web(app, PAGE_DIR, "people.html", ("/", "/people"))

    @app.get("/livez", response_model=Health, tags=["health"])
    async def livez() -> Health:
        return Health(status="ok")

    @app.get("/readyz", response_model=Health, tags=["health"], responses=problem_responses(503))
    async def readyz(request: Request) -> Health:
        service: Enrolment | None = getattr(request.app.state, "enrolment", None)
        if service is None:
            raise ProblemError(503, "starting")
        last = service.builder.last
        return Health(status="ok", detail=f"revision {last.revision}, version {last.version}")

    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    if (
        settings.allowed_origins
    ):  # outermost: refusals (401, 413) carry the headers the page needs to read them
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["X-API-Key"],
        )
    return app
