"""What a build learns from: the store's photos, corrected faces and adopted reference embeddings,
turned into training rows and the corrections a version carries.

- An uploaded photo gives its person's face (``main_face_features``: the one face, or in a
  group photo the face most like the person's one-face photos), as the training CLI picks it.
- A correction's photo gives the face the correction named (found again by its box).
- A "not this person" face goes into the version's corrections only, never into training.
- A person adopted from a served version gives that version's reference embeddings, which
  can only be used with the detector and embedding that made them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.artifact.manifest import StageSpec
from app.labelled.folders import Photo, Skipped
from app.model.corrections import Corrections
from app.pipeline.detect import FaceDetector
from app.pipeline.features import FeatureExtractor
from enrolment.intake import SAME_FACE_IOU, Intake
from enrolment.records import NegativeRecord, Person, PhotoRecord, Snapshot
from enrolment.store import Store
from training.cache import PhotoFaces
from training.errors import TrainingInputError
from training.faces import embed_photos, main_face_features


@dataclass(frozen=True)
class Examples:
    """Training rows (features, class ids), the corrections beside them, and what was left out."""

    features: np.ndarray
    labels: np.ndarray
    corrections: Corrections | None
    #: The photos whose faces are in ``features`` (for the manifest's dataset summary).
    photos: list[Photo]
    dropped: list[Skipped]
    #: How many rows came from adopted reference embeddings.
    adopted: int

    @property
    def people(self) -> set[str]:
        return {str(label) for label in self.labels}


def stale_adoptions(people: list[Person], intake: Intake) -> list[Person]:
    """People adopted with reference embeddings that the trainer's detector and embedding did not make."""
    detector, extractor = intake.detector, intake.extractor
    return [
        person
        for person in people
        if person.seeded is not None
        and not (
            person.seeded.detector.names(detector.name, detector.params)
            and person.seeded.features.names(extractor.name, extractor.params)
        )
    ]


def stale_reason(people: list[Person], intake: Intake) -> str | None:
    """Why a build of ``people`` would have to re-embed adopted people, which it cannot (one line)."""
    stale = stale_adoptions(people, intake)
    if not stale:
        return None
    seeded = stale[0].seeded
    assert seeded is not None
    names = ", ".join(p.id for p in stale)
    made = [
        _difference(what, spec, stage)
        for what, spec, stage in (
            ("embedding", seeded.features, intake.extractor),
            ("detector", seeded.detector, intake.detector),
        )
        if not spec.names(stage.name, stage.params)
    ]
    return (
        f"cannot build: {names} came from version {seeded.version} as reference embeddings made with "
        f"another {' and '.join(made)}; without photos they cannot be re-embedded: add photos of them "
        "and drop their references (DELETE /v1/people/{id}/seeded), or delete them"
    )


def _difference(what: str, spec: StageSpec, stage: FaceDetector | FeatureExtractor) -> str:
    """``embedding (facenet {'margin': 0.3}; the trainer's: facenet {'margin': 0.2})``: names, and
    the parameters too when the names are the same."""
    if spec.name != stage.name:
        return f"{what} ({spec.name}; the trainer's: {stage.name})"
    return f"{what} ({spec.name} {spec.params}; the trainer's: {stage.name} {stage.params})"


def gather(snapshot: Snapshot, store: Store, intake: Intake) -> Examples:
    """Every training row and correction of ``snapshot``, faces read through the cache.

    Raises TrainingInputError when adopted people's embeddings were made by other stages.
    """
    refused = stale_reason(snapshot.people, intake)
    if refused is not None:
        raise TrainingInputError(refused)
    uploads = [p for person in snapshot.people for p in person.photos if p.correction is None]
    corrected = [p for person in snapshot.people for p in person.stored_photos if p.correction]
    photos = {p.id: Photo(store.photo_path(p.id), p.person_id, p.sha256) for p in (*uploads, *corrected)}
    faces, dropped = embed_photos(
        list(photos.values()), intake.detector, intake.extractor, intake.cache, "enrol"
    )
    rows: list[np.ndarray] = []
    labels: list[str] = []
    kept = [p for p in uploads if photos[p.id] in faces]
    if kept:
        entries = [(p.person_id, faces[photos[p.id]]) for p in kept]
        rows.append(main_face_features(entries, intake.extractor.embedding))
        labels += [p.person_id for p in kept]
    found: list[tuple[PhotoRecord | NegativeRecord, np.ndarray]] = []
    for record in corrected:
        entry = faces.get(photos[record.id])
        row = _corrected_face(record, entry) if entry is not None else None
        if row is None:
            dropped.append(Skipped(photos[record.id].path, "the corrected face is no longer found in it"))
        else:
            found.append((record, row))
    positives = [(r, row) for r, row in found if isinstance(r, PhotoRecord)]
    if positives:
        rows.append(np.stack([row for _, row in positives]))
        labels += [r.person_id for r, _ in positives]
    adopted = 0
    for person_id, references in snapshot.references.items():
        rows.append(references)
        labels += [person_id] * len(references)
        adopted += len(references)
    in_model = set(labels)
    against = [(r, row) for r, row in found if r.person_id in in_model]  # a verdict about a class
    corrections = (
        Corrections(
            np.stack([row for _, row in against]),
            np.array([r.person_id for r, _ in against]),
            np.array(["is" if isinstance(r, PhotoRecord) else "is_not" for r, _ in against]),
        )
        if against
        else None
    )
    return Examples(
        np.concatenate(rows).astype(np.float32) if rows else np.empty((0, 0), np.float32),
        np.array(labels, dtype=str),
        corrections,
        [photos[p.id] for p in kept] + [photos[r.id] for r, _ in positives],
        dropped,
        adopted,
    )


def _corrected_face(record: PhotoRecord | NegativeRecord, entry: PhotoFaces) -> np.ndarray | None:
    """The feature row of the face a correction named, found by its box among the photo's faces."""
    assert record.correction is not None
    target = record.correction.analysed_box
    overlaps = [face.box.iou(target) for face in entry.faces]
    if not overlaps or max(overlaps) < SAME_FACE_IOU:
        return None
    return entry.features[overlaps.index(max(overlaps))]
