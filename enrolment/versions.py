"""The folder of published versions, as the trainer keeps it: seeded, reconciled, pruned, checked.

After each build, versions this service published beyond the newest ``retain_versions`` are
removed, and so is every version (whoever built it) that holds a person erased after it was
built. At start-up, a first start copies a seed version in (``ENROL_SEED_DIR``), and the
versions table is made to match the folders after a ``kill -9``.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from app.artifact.manifest import (
    LATEST,
    MANIFEST,
    ArtifactError,
    Manifest,
    load_manifest,
    resolve_version_dir,
)
from enrolment import durable
from enrolment.settings import EnrolmentSettings
from enrolment.store import Store

log = logging.getLogger("enrolment")

#: ``dataset.root`` in the manifests of the versions this service builds.
ENROLMENT_ROOT = "enrolment store"


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
                # The build that should replace it failed (a full disk, say): serving nothing is
                # better than serving an erased person.
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

    Hidden leftovers go; a version this store published but had not recorded yet is recorded
    (another store's, such as a seed, is not); a recorded version whose folder is gone is forgotten.
    """
    backend_dir = settings.artifacts_dir / settings.backend
    for path in durable.remove_leftovers(backend_dir):
        log.warning("removed %s, left by an interrupted build", path)
    ours = store.versions()
    store.forget_versions([v for v in ours if not (backend_dir / v).is_dir()])
    for folder in sorted(backend_dir.iterdir()) if backend_dir.is_dir() else []:
        manifest = _manifest(folder)
        if folder.name not in ours and manifest and manifest.dataset.get("store") == store.id:
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
