"""Request and response bodies of the enrolment API, shown in its OpenAPI document at /docs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from app.api.schemas import BoxOut
from app.model.corrections import Verdict
from enrolment.builder import BuildResult
from enrolment.intake import Outcome
from enrolment.records import NegativeRecord, Person, PhotoRecord, PhotoSource, Seeded
from enrolment.service import Enrolled


class CorrectionOut(BaseModel):
    """A verdict about one face of a photo, where it came from, and how to undo it."""

    id: str
    verdict: Verdict = Field(description="'is': the face is this person; 'is_not': it is not")
    person_id: str
    filename: str
    box: BoxOut = Field(description="The face, in the photo's pixels, as the classify answer boxed it")
    answered: str | None = Field(None, description="What the classify service had answered for the face")
    model_version: str | None = Field(None, description="The version that gave that answer")
    created: str
    undo: str = Field(description="DELETE this to undo the correction")

    @classmethod
    def of(cls, record: PhotoRecord | NegativeRecord) -> CorrectionOut:
        face = record.correction
        assert face is not None
        return cls(
            id=record.id,
            verdict="is_not" if isinstance(record, NegativeRecord) else "is",
            person_id=record.person_id,
            filename=record.filename,
            box=BoxOut(**face.box.as_dict()),
            answered=face.answered,
            model_version=face.model_version,
            created=record.created,
            undo=f"/v1/corrections/{record.id}",
        )


class PhotoOut(BaseModel):
    id: str
    filename: str
    faces: int = Field(description="Faces found in the photo; with several, the build picks the person's")
    created: str
    source: PhotoSource = Field(description="'upload': enrolled as a photo; 'correction': from a correction")
    correction: CorrectionOut | None = Field(
        None, description="For a correction: which face, what it corrected"
    )

    @classmethod
    def of(cls, photo: PhotoRecord) -> PhotoOut:
        return cls(
            id=photo.id,
            filename=photo.filename,
            faces=photo.faces,
            created=photo.created,
            source=photo.source,
            correction=CorrectionOut.of(photo) if photo.correction is not None else None,
        )


class SeededOut(BaseModel):
    """The reference embeddings a person was adopted with from a served version."""

    version: str = Field(description="The version they were adopted from")
    references: int = Field(description="Reference embeddings (that version's training faces of them)")
    detector: str
    features: str
    labelled_by: str = Field(description="How each reference is known to be theirs")
    created: str

    @classmethod
    def of(cls, seeded: Seeded) -> SeededOut:
        return cls(
            version=seeded.version,
            references=seeded.count,
            detector=seeded.detector.name,
            features=seeded.features.name,
            labelled_by=seeded.labelled_by,
            created=seeded.created,
        )


class PersonOut(BaseModel):
    id: str = Field(examples=["samwise"])
    name: str = Field(examples=["Samwise Gamgee"])
    character: str | None = None
    has_picture: bool
    created: str
    photos: list[PhotoOut]
    negatives: list[CorrectionOut] = Field(
        description="Faces users said are not this person, kept as 'not this person' examples"
    )
    seeded: SeededOut | None = Field(None, description="Set for a person adopted from a served version")
    note: str | None = Field(None, description="What a user should know, such as: no photos to re-embed")

    @classmethod
    def of(cls, person: Person) -> PersonOut:
        return cls(
            id=person.id,
            name=person.name,
            character=person.character,
            has_picture=person.picture is not None,
            created=person.created,
            photos=[PhotoOut.of(p) for p in person.photos],
            negatives=[CorrectionOut.of(n) for n in person.negatives],
            seeded=SeededOut.of(person.seeded) if person.seeded is not None else None,
            note=_note(person),
        )


def _note(person: Person) -> str | None:
    seeded = person.seeded
    if seeded is None or person.photos:
        return None
    return (
        f"adopted from version {seeded.version} with {seeded.count} reference embeddings and no photos: "
        "if the detector or the embedding changes they cannot be re-embedded; add photos of them"
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
    version: str | None = Field(description="The newest version this service published (or adopted)")
    blocked: str | None = Field(
        None, description="Why the next build would be refused, when it would (one line); else null"
    )


class Corrected(BaseModel):
    correction: CorrectionOut
    person_created: bool = Field(description="The correction named someone new, who was enrolled for it")
    build: BuildOut


class Undone(BaseModel):
    correction: CorrectionOut
    build: BuildOut


class Erased(BaseModel):
    person_id: str
    photos: int = Field(description="Photos erased, with their files and cached embeddings")
    build: BuildOut


class Changed(BaseModel):
    build: BuildOut
