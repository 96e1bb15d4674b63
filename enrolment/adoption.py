"""A new store starts with the served model's people, so the first enrolment adds to the model.

When the trainer starts on a store that never held anyone and the artifacts folder serves a
version (the committed default, seeded into an empty volume by ``ENROL_SEED_DIR``, or any
other), the store adopts that version's people: ids, display names, characters, pictures,
and the version's reference embeddings (its training faces) as their examples. The store
records which version they came from and which detector and embedding made them: having no
photos, they cannot be re-embedded, and a build with other stages refuses them in one line
(``enrolment.examples.stale_reason``).

A version written before reference labels were stored (``reference_labels.npy``) does not
say whose face each reference is; its own classifier names them then, as it answered them
when it was trained (its training faces; checked against the training split in the tests).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from app.artifact.file_names import REFERENCE_LABELS, REFERENCES
from app.artifact.manifest import ArtifactError, Manifest, load_manifest, resolve_version_dir
from app.backends import load_classifier
from enrolment.records import Adopted, Seeded
from enrolment.settings import EnrolmentSettings
from enrolment.store import Store

log = logging.getLogger("enrolment")

#: How ``Seeded.labelled_by`` says whose face each reference is.
LABELLED_BY_FILE = "the version's reference labels"
LABELLED_BY_CLASSIFIER = "the version's own classifier (the version stores no reference labels)"


def adopt(store: Store, settings: EnrolmentSettings) -> str | None:
    """Adopt the people of the version ``LATEST`` names into a store that never held anyone.

    Returns the version adopted, or None (the store is not new, nothing is served, or the
    served version has no reference embeddings to adopt).
    """
    if store.revision() or store.people():
        return None
    try:
        version_dir = resolve_version_dir(settings.artifacts_dir, settings.backend)
        manifest = load_manifest(version_dir)
    except ArtifactError as exc:
        log.info("no served version to adopt people from: %s", exc)
        return None
    if not manifest.classes:
        return None
    if REFERENCES not in manifest.files:
        log.warning(
            "version %s has no reference embeddings (its features are %s): its people are not adopted",
            manifest.version,
            manifest.features.name,
        )
        return None
    people = adopted_people(version_dir, manifest)
    if store.adopt(manifest.version, people) is None:
        return None
    log.info("adopted %d people from version %s", len(people), manifest.version)
    return manifest.version


def adopted_people(version_dir: Path, manifest: Manifest) -> list[Adopted]:
    """Each class of a version with its display details, picture and reference embeddings."""
    references = np.load(version_dir / REFERENCES, allow_pickle=False)
    labels, labelled_by = reference_labels(version_dir, manifest, references)
    created = datetime.now(UTC).isoformat(timespec="seconds")
    people = []
    for info in manifest.classes:
        own = references[labels == info.id].astype(np.float32)
        if not len(own):
            continue
        picture = (version_dir / info.picture).read_bytes() if info.picture else None
        seeded = Seeded(
            manifest.version, manifest.detector, manifest.features, len(own), labelled_by, created
        )
        people.append(Adopted(info.id, info.name, info.character, picture, own, seeded))
    return people


def reference_labels(version_dir: Path, manifest: Manifest, references: np.ndarray) -> tuple[np.ndarray, str]:
    """Whose face each reference is, and how that is known."""
    if REFERENCE_LABELS in manifest.files:
        return np.load(version_dir / REFERENCE_LABELS, allow_pickle=False), LABELLED_BY_FILE
    probabilities = load_classifier(version_dir, manifest).predict_proba(references)
    return np.array(manifest.class_ids)[probabilities.argmax(axis=1)], LABELLED_BY_CLASSIFIER
