"""What the store holds, as the rest of the trainer sees it: people, their photos, the faces
users corrected, and the reference embeddings of people adopted from a served version.

Every example a build learns from says where it came from: an upload, a correction of a
classify answer (which face, what the service had answered, which version answered it), or
a version the store was seeded from. ``GET /v1/people/{id}`` shows all of it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from app.artifact.manifest import StageSpec
from app.model.corrections import Verdict
from app.pipeline.detect import Box

#: A person id becomes a class id, a file name and a URL segment; "unknown" is the open-set label.
PERSON_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
RESERVED_IDS = frozenset({"unknown"})

PhotoSource = Literal["upload", "correction"]


class StoreError(Exception):
    """A change the store refuses; ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def check_person_id(person_id: str) -> str:
    if not PERSON_ID.match(person_id) or person_id in RESERVED_IDS:
        raise StoreError(
            422,
            f"invalid person id {person_id!r}: use 1-64 lower-case letters, digits, '.', '_' and '-', "
            "starting with a letter or digit (and not 'unknown')",
        )
    return person_id


def box_json(box: Box) -> str:
    return json.dumps(box.as_dict())


def box_from_json(text: str) -> Box:
    return Box(**json.loads(text))


@dataclass(frozen=True)
class FaceRef:
    """The face of a photo a correction is about, and the answer it corrected."""

    #: The face as ``/v1/classify`` boxed it, in the uploaded photo's pixels.
    box: Box
    #: The same face as the trainer's detector finds it, in the pixels it analysed (a large
    #: photo is analysed at reduced size): how a build finds the face among the photo's faces.
    analysed_box: Box
    #: What the classify service had answered for this face, and the version that answered.
    answered: str | None = None
    model_version: str | None = None


@dataclass(frozen=True)
class StoredPhoto:
    """A photo file the store keeps (``photos/<id>``), and whose it is."""

    id: str
    person_id: str
    sha256: str
    filename: str
    faces: int
    created: str


@dataclass(frozen=True)
class PhotoRecord(StoredPhoto):
    """One of a person's photos: uploaded, or added by a correction ("this face is this person")."""

    #: Set for a photo added by a correction: which face it is.
    correction: FaceRef | None = None

    @property
    def source(self) -> PhotoSource:
        return "upload" if self.correction is None else "correction"


@dataclass(frozen=True)
class NegativeRecord(StoredPhoto):
    """A face a user said is not ``person_id``: kept as a "not this person" example."""

    correction: FaceRef


@dataclass(frozen=True)
class Seeded:
    """Reference embeddings a person was adopted with from a served version, and how they were made.

    They are the version's training faces, not photos: a detector or embedding other than
    ``detector`` and ``features`` cannot re-make them, and a build with other stages refuses them.
    """

    version: str
    detector: StageSpec
    features: StageSpec
    count: int
    #: "reference labels": the version stored whose face each reference is; "the version's
    #: classifier": an older version that did not, whose own classifier named each one.
    labelled_by: str
    created: str


@dataclass(frozen=True)
class Person:
    id: str
    name: str
    character: str | None
    #: File name of the display picture under pictures/, or None.
    picture: str | None
    created: str
    photos: list[PhotoRecord] = field(default_factory=list)
    negatives: list[NegativeRecord] = field(default_factory=list)
    seeded: Seeded | None = None

    @property
    def stored_photos(self) -> list[PhotoRecord | NegativeRecord]:
        """Every photo file kept for this person: their photos and the faces that are not them."""
        return [*self.photos, *self.negatives]


@dataclass(frozen=True)
class NewPhoto:
    """A photo that passed intake (it has a face), ready to be stored; ``correction`` names the
    face when it comes from a correction."""

    data: bytes
    sha256: str
    filename: str
    faces: int
    correction: FaceRef | None = None


@dataclass(frozen=True)
class Adopted:
    """One person of a served version, as ``Store.adopt`` takes them in."""

    id: str
    name: str
    character: str | None
    picture: bytes | None
    references: np.ndarray
    seeded: Seeded


@dataclass(frozen=True)
class Snapshot:
    """Everything one build needs, read in one transaction."""

    revision: int
    people: list[Person]
    #: Person id -> the reference embeddings they were adopted with (rows, float32).
    references: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class CorrectionRequest:
    """A verdict about one face of a photo, as a client sends it back from a classify answer."""

    person_id: str
    verdict: Verdict
    box: Box
    #: A display name: given for a person the store does not hold yet, who is then created.
    name: str | None = None
    answered: str | None = None
    model_version: str | None = None
