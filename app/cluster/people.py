"""Who each face is: a person the model knows, a group of faces of one unnamed person, or nobody yet.

Faces the served model names keep its label, as ``classify`` gives it. The other faces of
good quality are grouped (``app.cluster.grouping``); a group needs ``MIN_GROUP`` faces, and a
face alone is reported as seen once. Faces too small for a reliable name, or blurred
(``Face.grade``), are kept out of the grouping, where their embeddings would blur its
distances, and join the group nearest to them only when they are as close to its centre as
the unknown rule demands of a face it names.

Groups are numbered largest first, ties by their faces' content, so the same photos give the
same numbers in any order and under any names.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal

import numpy as np

from app.cluster.embedding import Joint
from app.cluster.faces import Face
from app.cluster.grouping import attach, drop_small, group, reach_for
from app.model.recognizer import UNKNOWN

Kind = Literal["known", "group", "ungrouped"]
#: Why a face is in no group.
Why = Literal["seen once", "low quality"]


@dataclass(frozen=True)
class Placed:
    face: Face
    kind: Kind
    #: ``group-01``... for a group, the person's id for a known face, None when ungrouped.
    name: str | None
    #: Cosine distance to the centre of its group's (or known person's) faces here; None when ungrouped.
    distance: float | None
    why: Why | None = None


def place(
    faces: list[Face], joint: Joint | None, unknown_threshold: float, group_threshold: float
) -> list[Placed]:
    """Every face, placed; in order: groups largest first, then faces seen once, then known people.

    The unnamed faces are grouped on their embeddings joined with their companion ones (``joint``,
    when the model has one); the thresholds are on that scale (``grouping.same_person_threshold``).
    """
    unknown = [f for f in faces if f.label == UNKNOWN]
    known = [f for f in faces if f.label != UNKNOWN]
    return [*_group_unknown(unknown, joint, unknown_threshold, group_threshold), *_known(known)]


def _content_key(face: Face) -> tuple[str, int, int, int, int]:
    """What a face is, whatever its photo's name: the photo's bytes and the box."""
    return (face.sha256, face.box.x, face.box.y, face.box.width, face.box.height)


def _group_unknown(
    faces: list[Face], joint: Joint | None, unknown_threshold: float, group_threshold: float
) -> list[Placed]:
    if not faces:
        return []
    faces = sorted(faces, key=_content_key)
    embeddings = np.stack([f.embedding for f in faces])
    if joint is not None:
        embeddings = joint.join(embeddings, np.stack([_companion(f) for f in faces]))
    good = np.array([f.grade == "good" for f in faces])
    labels = np.full(len(faces), -1, np.int64)
    labels[good] = drop_small(group(embeddings[good], group_threshold, reach_for(joint)))
    labels, distances = attach(embeddings, labels, ~good, unknown_threshold)
    sizes = Counter(int(label) for label in labels if label >= 0)
    first = {int(label): i for i, label in reversed(list(enumerate(labels))) if label >= 0}
    order = sorted(sizes, key=lambda label: (-sizes[label], first[label]))
    width = max(2, len(str(len(order))))
    names = {label: f"group-{rank + 1:0{width}d}" for rank, label in enumerate(order)}
    grouped = sorted(  # the names sort as the groups' ranks, being zero-padded
        (
            Placed(f, "group", names[int(label)], float(d))
            for f, label, d in zip(faces, labels, distances, strict=True)
            if label >= 0
        ),
        key=lambda p: (p.name, p.distance),
    )
    alone = [
        Placed(f, "ungrouped", None, None, "seen once" if ok else "low quality")
        for f, label, ok in zip(faces, labels, good, strict=True)
        if label < 0
    ]
    return grouped + alone


def _companion(face: Face) -> np.ndarray:
    if face.companion is None or np.isnan(face.companion).any():
        raise ValueError(f"the face at {face.box} in {face.photo} has no companion embedding")
    return face.companion


def _known(faces: list[Face]) -> list[Placed]:
    """The faces the model named, by person (most faces first), closest to the person's centre first."""
    placed = []
    by_person: dict[str, list[Face]] = {}
    for face in sorted(faces, key=_content_key):
        by_person.setdefault(face.label, []).append(face)
    for person, theirs in sorted(by_person.items(), key=lambda item: (-len(item[1]), item[0])):
        one_group = np.zeros(len(theirs), np.int64)
        _, distances = attach(np.stack([f.embedding for f in theirs]), one_group, one_group.astype(bool), 0.0)
        placed += sorted(
            (Placed(f, "known", person, float(d)) for f, d in zip(theirs, distances, strict=True)),
            key=lambda p: p.distance or 0.0,
        )
    return placed
