"""Request and response bodies of the enrolment API, shown in its OpenAPI document at /docs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from enrolment.builder import BuildResult
from enrolment.intake import Outcome
from enrolment.service import Enrolled
from enrolment.store import Person, PhotoRecord


class PhotoOut(BaseModel):
    id: str
    filename: str
    faces: int = Field(description="Faces found in the photo; with several, the build picks the person's")
    created: str

    @classmethod
    def of(cls, photo: PhotoRecord) -> PhotoOut:
        return cls(id=photo.id, filename=photo.filename, faces=photo.faces, created=photo.created)


class PersonOut(BaseModel):
    id: str = Field(examples=["samwise"])
    name: str = Field(examples=["Samwise Gamgee"])
    character: str | None = None
    has_picture: bool
    created: str
    photos: list[PhotoOut]

    @classmethod
    def of(cls, person: Person) -> PersonOut:
        return cls(
            id=person.id,
            name=person.name,
            character=person.character,
            has_picture=person.picture is not None,
            created=person.created,
            photos=[PhotoOut.of(p) for p in person.photos],
        )


class BuildOut(BaseModel):
    """The model version that holds a change, or where to poll for it."""

    revision: int = Field(
        description="The store revision this change made; builds cover every revision up to theirs"
    )
    status: Literal["done", "pending", "failed"]
    version: str | None = Field(None, description="The published version that holds the change")
    detail: str | None = Field(None, description="Why the build failed")
    poll: str = Field(description="GET this for the build's status")

    @classmethod
    def of(cls, revision: int, result: BuildResult | None) -> BuildOut:
        poll = f"/v1/builds/{revision}"
        if result is None:
            return cls(revision=revision, status="pending", poll=poll)
        status: Literal["done", "failed"] = "failed" if result.error is not None else "done"
        return cls(revision=revision, status=status, version=result.version, detail=result.error, poll=poll)


class PhotoResult(BaseModel):
    filename: str
    outcome: Outcome = Field(
        description="face_used and several_faces: stored; no_face, unreadable, too_large: refused; "
        "duplicate: this person already has these bytes"
    )
    faces: int
    photo_id: str | None = Field(None, description="The stored photo's id (for DELETE)")
    person_id: str | None = None
    detail: str | None = None

    @classmethod
    def of(cls, enrolled: Enrolled) -> PhotoResult:
        stored = enrolled.stored
        return cls(
            filename=enrolled.checked.filename,
            outcome=enrolled.outcome,
            faces=enrolled.checked.faces,
            photo_id=stored.id if stored is not None else None,
            person_id=enrolled.person_id,
            detail=enrolled.checked.detail if enrolled.outcome != "duplicate" else None,
        )


class PhotosAdded(BaseModel):
    photos: list[PhotoResult]
    build: BuildOut | None = Field(None, description="None when no photo was stored (nothing changed)")


class PersonCreated(BaseModel):
    person: PersonOut
    note: str = "add photos (POST /v1/people/{id}/photos) to put this person in the model"


class PeopleOut(BaseModel):
    people: list[PersonOut]
    revision: int
    version: str | None = Field(description="The newest version this service published")


class Erased(BaseModel):
    person_id: str
    photos: int = Field(description="Photos erased, with their files and cached embeddings")
    build: BuildOut


class Changed(BaseModel):
    build: BuildOut
