"""Turn the store into model versions: one builder thread, builds published atomically.

Changes only bump the store's revision and wake the builder; it snapshots the store,
fits a version on every enrolled photo with ``training.trained_artifact.fit_artifact`` (the
CLI's code, embeddings from the cache), publishes it, and goes again if more changes
came in meanwhile, so a burst of enrolments costs a build or two rather than one each.
A single thread means builds never race one another; SQLite serialises the changes.

Publishing: the version is written into a hidden temporary folder, every file and the
folder are fsynced, the folder is renamed into place, then ``LATEST`` is written the
same way. A ``kill -9`` at any moment leaves the previous ``LATEST`` and only complete
versions visible; the hidden leftovers are removed at the next start.

After each build, versions this service published beyond the newest
``retain_versions`` are removed, and so is every version (whoever built it) that
holds a person erased after it was built.
"""

from __future__ import annotations

import logging
import shutil
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from app.artifact.manifest import (
    LATEST,
    MANIFEST,
    ArtifactError,
    ClassInfo,
    Manifest,
    load_manifest,
    resolve_version_dir,
    write_manifest,
)
from app.labelled.folders import Dataset, DatasetError, Photo
from enrolment import durable
from enrolment.intake import Intake
from enrolment.settings import EnrolmentSettings
from enrolment.store import Snapshot, Store
from training.errors import TrainingInputError
from training.faces import embed_photos, main_face_features, summarise_drops
from training.fitting import FitOptions
from training.report import write_report
from training.trained_artifact import fit_artifact

log = logging.getLogger("enrolment")

#: The svm search an enrolment build runs by default (ENROL_SEARCH=svm; see docs/enrolment.md).
SVM_ONLY = frozenset({"svm"})
#: ``dataset.root`` in the manifests of the versions this service builds.
ENROLMENT_ROOT = "enrolment store"


@dataclass(frozen=True)
class BuildResult:
    """The outcome of the build of ``revision`` (which covers every change up to it)."""

    revision: int
    version: str | None
    error: str | None = None


def version_name(backend_dir: Path, revision: int) -> str:
    """``<UTC time>-r<revision>``, with ``.2``, ``.3``... if a build of the same second took it."""
    base = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-r{revision}"
    taken = 1
    while (backend_dir / (name := base if taken == 1 else f"{base}.{taken}")).exists():
        taken += 1
    return name


def build_version(snapshot: Snapshot, store: Store, intake: Intake, settings: EnrolmentSettings) -> str:
    """Fit and publish the version of ``snapshot``; return its name.

    Raises TrainingInputError (a DatasetError) when the store holds nothing to train on.
    """
    photos = [
        Photo(store.photo_path(photo.id), person.id, photo.sha256)
        for person in snapshot.people
        for photo in person.photos
    ]
    faces, dropped = embed_photos(photos, intake.detector, intake.extractor, intake.cache, "enrol")
    kept = [p for p in photos if p in faces]
    if not kept:
        raise TrainingInputError("no enrolled person has a photo with a face: nothing to train")
    labels = {p.label for p in kept}
    people = [p for p in snapshot.people if p.id in labels]
    classes = [ClassInfo(id=p.id, name=p.name, character=p.character) for p in people]
    dataset = Dataset(store.photos_dir, classes, kept, dropped)
    backend_dir = settings.artifacts_dir / settings.backend
    backend_dir.mkdir(parents=True, exist_ok=True)
    version = version_name(backend_dir, snapshot.revision)
    artifact = fit_artifact(
        main_face_features([(p.label, faces[p]) for p in kept], intake.extractor.embedding),
        np.array([p.label for p in kept]),
        classes,
        intake.detector,
        intake.extractor,
        FitOptions(settings.backend, search_models=SVM_ONLY if settings.search == "svm" else None),
        version,
        {
            "root": ENROLMENT_ROOT,
            "revision": snapshot.revision,
            "fingerprint": dataset.fingerprint(),
            "photos": len(kept),
            "train_photos": len(kept),
            "test_photos": 0,
            "evaluation": "none",
            "train_faces": len(kept),
            "skipped": [f"{s.path.name}: {s.reason}" for s in dropped],
            "skipped_counts": summarise_drops(dropped),
        },
    )
    artifact.manifest.metrics["evaluation"] = {
        "method": "none",
        "why": "an enrolment build trains on every enrolled photo; no photo is held out",
    }
    tmp = durable.temp_dir_beside(backend_dir / version)
    try:
        pictures = {p.id: path for p in people if (path := store.picture_path(p)) is not None}
        artifact.save(tmp, pictures, plots=False)  # no matplotlib plot per change (docs/enrolment.md)
        write_report(artifact.manifest, tmp / "report.md")
        write_manifest(tmp, artifact.manifest)
        durable.move_into_place(tmp, backend_dir / version)
    except BaseException:
        durable.remove_leftovers(backend_dir)
        raise
    durable.write_file(backend_dir / LATEST, (version + "\n").encode())
    return version


def prune(store: Store, settings: EnrolmentSettings) -> list[str]:
    """Remove old versions of ours and any version holding an erased person; return their names."""
    backend_dir = settings.artifacts_dir / settings.backend
    ours = store.versions()
    keep = set(list(ours)[: settings.retain_versions])
    erasures = store.erasures()
    latest_file = backend_dir / LATEST
    latest = latest_file.read_text(encoding="utf-8").strip() if latest_file.is_file() else None
    removed = []
    for folder in sorted(backend_dir.iterdir()) if backend_dir.is_dir() else []:
        if folder.name.startswith(".") or not (folder / MANIFEST).is_file():
            continue
        built_at = ours.get(folder.name, 0)  # 0: not built here (the committed default, say)
        holds_erased = any(erasures.get(c, -1) > built_at for c in _class_ids(folder))
        stale = folder.name in ours and folder.name not in keep and folder.name != latest
        if holds_erased or stale:
            if folder.name == latest:
                # Nothing newer could be built (every person erased): no version is better than this one.
                latest_file.unlink()
                durable.fsync_dir(backend_dir)
            durable.remove_dir(folder)
            removed.append(folder.name)
    store.forget_versions([v for v in removed if v in ours])
    if removed:
        log.info("removed versions %s", ", ".join(removed))
    return removed


def seed(settings: EnrolmentSettings) -> str | None:
    """Copy ``seed_dir``'s current version in, if the artifacts folder has no ``LATEST`` yet.

    Only on a first start (an empty volume): afterwards the folder is this service's, and a
    seed version holding a person erased since must never come back. Returns what was copied.
    """
    backend_dir = settings.artifacts_dir / settings.backend
    if settings.seed_dir is None or (backend_dir / LATEST).exists():
        return None
    try:
        source = resolve_version_dir(settings.seed_dir, settings.backend)
    except ArtifactError as exc:
        log.warning("nothing to seed from: %s", exc)
        return None
    backend_dir.mkdir(parents=True, exist_ok=True)
    tmp = durable.temp_dir_beside(backend_dir / source.name)
    shutil.copytree(source, tmp)
    durable.move_into_place(tmp, backend_dir / source.name)
    durable.write_file(backend_dir / LATEST, (source.name + "\n").encode())
    log.info("seeded %s from %s", backend_dir / source.name, source)
    return source.name


def reconcile(store: Store, settings: EnrolmentSettings) -> None:
    """At start-up, make the versions table match the folders after a ``kill -9``.

    Hidden leftovers go; a version published but not yet recorded is adopted; a recorded
    version whose folder is gone is forgotten.
    """
    backend_dir = settings.artifacts_dir / settings.backend
    for path in durable.remove_leftovers(backend_dir):
        log.warning("removed %s, left by an interrupted build", path)
    ours = store.versions()
    store.forget_versions([v for v in ours if not (backend_dir / v).is_dir()])
    for folder in sorted(backend_dir.iterdir()) if backend_dir.is_dir() else []:
        manifest = _manifest(folder)
        if folder.name not in ours and manifest and manifest.dataset.get("root") == ENROLMENT_ROOT:
            store.record_version(folder.name, int(manifest.dataset["revision"]))


def check_published(settings: EnrolmentSettings) -> list[str]:
    """What is wrong with the published versions (empty when all is well), as a loader sees them.

    ``LATEST`` must name a version, and every visible version must verify against its
    manifest; hidden temporaries are invisible to loaders and do not count.
    """
    backend_dir = settings.artifacts_dir / settings.backend
    problems = []
    try:
        resolve_version_dir(settings.artifacts_dir, settings.backend)
    except ArtifactError as exc:
        problems.append(str(exc))
    for folder in sorted(backend_dir.iterdir()) if backend_dir.is_dir() else []:
        if folder.is_dir() and not folder.name.startswith("."):
            try:
                load_manifest(folder)
            except ArtifactError as exc:
                problems.append(str(exc))
    return problems


def _manifest(version_dir: Path) -> Manifest | None:
    try:
        return Manifest.model_validate_json((version_dir / MANIFEST).read_bytes())
    except (OSError, ValueError):
        return None


def _class_ids(version_dir: Path) -> list[str]:
    manifest = _manifest(version_dir)
    return manifest.class_ids if manifest else []


class Builder:
    """The one thread that builds; callers ``request`` a build and ``wait`` for their revision."""

    def __init__(self, store: Store, intake: Intake, settings: EnrolmentSettings) -> None:
        self.store, self.intake, self.settings = store, intake, settings
        self._wake = threading.Event()
        self._stop = False
        self._done = threading.Condition()
        revision = store.published_revision()
        self.last = BuildResult(revision, next(iter(store.versions()), None))
        self._thread = threading.Thread(target=self._run, name="enrolment-builder", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self.request()  # changes a killed process committed but never built

    def stop(self) -> None:
        self._stop = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=120)

    def request(self) -> None:
        self._wake.set()

    def wait(self, revision: int, timeout: float) -> BuildResult | None:
        """The result of the first build covering ``revision``, or None if it is still pending."""
        with self._done:
            self._done.wait_for(lambda: self.last.revision >= revision, timeout)
            return self.last if self.last.revision >= revision else None

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait()
            self._wake.clear()
            try:
                while not self._stop and self.store.revision() > self.last.revision:
                    self.build_once()
            except Exception:  # the store or the disk failed: log it, keep the thread for the next change
                log.exception("the builder failed; it retries at the next change")

    def build_once(self) -> BuildResult:
        """Build the store as it is now; prune even when nothing could be built (an erasure must)."""
        snapshot = self.store.snapshot()
        version, error = None, None
        try:
            version = build_version(snapshot, self.store, self.intake, self.settings)
            self.store.record_version(version, snapshot.revision)
            log.info("published %s (revision %d)", version, snapshot.revision)
        except DatasetError as exc:  # TrainingInputError included
            error = str(exc)
            log.warning("build of revision %d: %s", snapshot.revision, exc)
        except Exception as exc:  # a bug or a full disk: say so, keep serving the last version
            error = f"{type(exc).__name__}: {exc}"
            log.exception("build of revision %d failed", snapshot.revision)
        try:
            prune(self.store, self.settings)
        except Exception as exc:  # an erased person may still be in an old version: the change failed
            error = error or f"old versions could not be removed: {type(exc).__name__}: {exc}"
            log.exception("removing old versions failed")
        result = BuildResult(snapshot.revision, version, error)
        with self._done:
            self.last = result
            self._done.notify_all()
        return result
