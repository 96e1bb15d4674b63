"""Turn the store into model versions: one builder thread, builds published atomically.

Changes only bump the store's revision and wake the builder; it snapshots the store,
fits a version on every example (``enrolment.examples``: enrolled photos, corrected faces,
adopted reference embeddings) with ``training.trained_artifact.fit_artifact`` (the CLI's
code, embeddings from the cache), publishes it, and goes again if more changes came in
meanwhile, so a burst of enrolments costs a build or two rather than one each. A single
thread means builds never race one another; SQLite serialises the changes.

A store with nobody left in it (every person erased) publishes a version that knows
nobody: every classify replica swaps it in like any other and answers ``unknown`` for
every face, so an erasure takes effect everywhere without a restart.

Publishing: the version is written into a hidden temporary folder, every file and the
folder are fsynced, the folder is renamed into place, then ``LATEST`` is written the
same way. A ``kill -9`` at any moment leaves the previous ``LATEST`` and only complete
versions visible; the hidden leftovers are removed at the next start.

After each build, old versions are pruned (``enrolment.versions.prune``).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.artifact.file_names import REPORT
from app.artifact.manifest import LATEST, ClassInfo, Manifest, StageSpec, write_manifest
from app.labelled.folders import Dataset, DatasetError
from enrolment import durable
from enrolment.examples import Examples, gather
from enrolment.intake import Intake
from enrolment.records import Snapshot
from enrolment.settings import EnrolmentSettings
from enrolment.store import Store
from enrolment.versions import ENROLMENT_ROOT, prune
from training.cache import installed_versions
from training.faces import summarise_drops
from training.fitting import FitOptions
from training.report import write_report
from training.trained_artifact import LIBRARIES, fit_artifact

log = logging.getLogger("enrolment")

#: The svm search an enrolment build runs by default (ENROL_SEARCH=svm; see docs/enrolment.md).
SVM_ONLY = frozenset({"svm"})


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

    Raises TrainingInputError (a DatasetError) when the examples cannot make a model (adopted
    people whose embeddings the trainer's stages did not make; the cnn backend with one person).
    """
    examples = gather(snapshot, store, intake)
    backend_dir = settings.artifacts_dir / settings.backend
    backend_dir.mkdir(parents=True, exist_ok=True)
    version = version_name(backend_dir, snapshot.revision)
    tmp = durable.temp_dir_beside(backend_dir / version)
    try:
        if len(examples.labels):
            _write_model(tmp, version, examples, snapshot, store, intake, settings)
        else:
            _write_nobody(tmp, version, snapshot, store.id, intake, settings)
        durable.move_into_place(tmp, backend_dir / version)
    except BaseException:
        durable.remove_leftovers(backend_dir)
        raise
    durable.write_file(backend_dir / LATEST, (version + "\n").encode())
    return version


def _write_model(
    tmp: Path,
    version: str,
    examples: Examples,
    snapshot: Snapshot,
    store: Store,
    intake: Intake,
    settings: EnrolmentSettings,
) -> None:
    """Fit a version on the examples and write it, with its corrections, into ``tmp``."""
    people = [p for p in snapshot.people if p.id in examples.people]
    classes = [ClassInfo(id=p.id, name=p.name, character=p.character) for p in people]
    dataset = Dataset(store.photos_dir, classes, examples.photos, examples.dropped)
    artifact = fit_artifact(
        examples.features,
        examples.labels,
        classes,
        intake.detector,
        intake.extractor,
        FitOptions(settings.backend, search_models=SVM_ONLY if settings.search == "svm" else None),
        version,
        _summary(snapshot, examples, dataset.fingerprint(), store.id),
    )
    artifact.manifest.metrics["evaluation"] = {
        "method": "none",
        "why": "an enrolment build trains on every enrolled photo; no photo is held out",
    }
    pictures = {p.id: path for p in people if (path := store.picture_path(p)) is not None}
    artifact.save(tmp, pictures, plots=False)  # no matplotlib plot per change (docs/enrolment.md)
    if examples.corrections is not None:
        examples.corrections.save(tmp)
    write_report(artifact.manifest, tmp / REPORT)
    write_manifest(tmp, artifact.manifest)


def _write_nobody(
    tmp: Path, version: str, snapshot: Snapshot, store_id: str, intake: Intake, settings: EnrolmentSettings
) -> None:
    """Write a version that knows nobody into ``tmp``: the store has no one with a usable face."""
    tmp.mkdir()
    manifest = Manifest(
        backend=settings.backend,
        version=version,
        created=datetime.now(UTC),
        classes=[],
        detector=StageSpec(name=intake.detector.name, params=intake.detector.params),
        features=StageSpec(name=intake.extractor.name, params=intake.extractor.params),
        classifier={"architecture": "none: no one is enrolled"},
        library_versions=installed_versions(LIBRARIES),
        dataset={
            "root": ENROLMENT_ROOT,
            "store": store_id,
            "revision": snapshot.revision,
            "photos": 0,
            "evaluation": "none",
        },
    )
    (tmp / REPORT).write_text(
        f"# Model {settings.backend}/{version}\n\n"
        "Knows nobody: no one in the enrolment store has a usable face (every person erased, or none "
        "enrolled with a photo). Every face is answered `unknown`.\n",
        encoding="utf-8",
    )
    write_manifest(tmp, manifest)


def _summary(snapshot: Snapshot, examples: Examples, fingerprint: str, store_id: str) -> dict[str, Any]:
    """The manifest's ``dataset``: what the version learned from."""
    corrections = examples.corrections
    verdicts = Counter(corrections.verdicts.tolist()) if corrections is not None else Counter()
    rows = len(examples.labels)
    return {
        "root": ENROLMENT_ROOT,
        "store": store_id,
        "revision": snapshot.revision,
        "fingerprint": fingerprint,
        "photos": len(examples.photos),
        "train_photos": len(examples.photos),
        "test_photos": 0,
        "evaluation": "none",
        "train_faces": rows,
        "adopted_references": examples.adopted,
        "corrections": {"is": verdicts["is"], "is_not": verdicts["is_not"]},
        "skipped": [f"{s.path.name}: {s.reason}" for s in examples.dropped],
        "skipped_counts": summarise_drops(examples.dropped),
    }


class Builder:
    """The one thread that builds; callers ``request`` a build and ``wait`` for their revision."""

    def __init__(self, store: Store, intake: Intake, settings: EnrolmentSettings) -> None:
        self.store, self.intake, self.settings = store, intake, settings
        self._wake = threading.Event()
        self._stop = False
        self._done = threading.Condition()
        revision, version = store.published_revision(), next(iter(store.versions()), None)
        adopted = store.adoption()
        if adopted is not None and adopted[1] > revision:  # the served version is the store's until a change
            version, revision = adopted
        self.last = BuildResult(revision, version)
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
