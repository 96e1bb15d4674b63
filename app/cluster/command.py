"""``python -m app cluster PHOTOS --out DIR [--engine local|ray]``: the command, on the engine asked for.

1. Check what can be checked before any photo is read: DIR is new, empty, or an unfinished run
   with the same model and settings (then it resumes); the served model has embeddings and a
   same-person distance; PHOTOS holds photos.
2. Find every face of every photo not done yet (``app.cluster.faces.FaceJob`` on the local
   engine's threads or on Ray), a part file per batch in ``DIR/.cluster/``.
3. Place every face (``app.cluster.people``) and write DIR (``app.cluster.output``); the
   working folder then goes.

Bad input (no photos, none readable, a DIR that is neither new nor resumable, a model that
cannot group) is one line and exit status 2, as for every command.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from app.artifact.manifest import ArtifactError, load_manifest, resolve_version_dir
from app.batch import local
from app.batch.command import USAGE_ERROR, ray_engine_module
from app.batch.jobs import JobFailed, Processed
from app.batch.options import EngineName, RayOptions
from app.batch.rows import BatchInputError
from app.cluster.embedding import joint_for
from app.cluster.faces import (
    JOB_FILE,
    WORK,
    FaceJob,
    PhotoFaces,
    done_keys,
    job_description,
    read_archive,
    read_job,
)
from app.cluster.faces import remove_temporaries as remove_part_temporaries
from app.cluster.grouping import GroupingError, grouping_threshold, same_person_threshold
from app.cluster.output import RunFacts, write_output
from app.cluster.people import Placed, place
from app.config import Settings
from app.model.host import load_recognizer

#: Photos per part file on the local engine: what a run killed part way loses at most.
LOCAL_BATCH = 16


@dataclass(frozen=True)
class ClusterSummary:
    photos: int
    already_done: int
    placed: list[Placed]
    no_face: int
    errors: int
    skipped: int


def main(
    src: str,
    out: str | Path,
    settings: Settings,
    engine: EngineName = "local",
    ray_options: RayOptions | None = None,
) -> int:
    """The ``cluster`` subcommand: 0 on success; 2 for bad input; 1 when the model or the job failed."""
    try:
        summary = cluster(src, Path(out), settings, engine, ray_options or RayOptions())
    except (BatchInputError, GroupingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except (ArtifactError, JobFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename or out}", file=sys.stderr)
        return 1
    print(format_summary(summary, Path(out)))
    return 0


def cluster(
    src: str, out: Path, settings: Settings, engine: EngineName, options: RayOptions
) -> ClusterSummary:
    """Find, group and write; resumes from what an earlier run into ``out`` left."""
    manifest = load_manifest(
        resolve_version_dir(settings.artifacts_dir, settings.classifier_backend, settings.model_version)
    )
    group_threshold = grouping_threshold(manifest)  # a model that cannot group is refused before any work
    if engine == "ray":
        ray_engine = ray_engine_module()
        store = ray_engine.open_store(src)
        photos, skipped = ray_engine.list_photos(store)
    else:
        root = local.local_folder(src)
        if not root.is_dir():
            raise BatchInputError(f"{root} is not a folder")
        images, skipped = local.find_images(root)
        photos = {path.relative_to(root).as_posix(): path.stat().st_size for path in images}
    if not photos:
        raise BatchInputError(f"no photos under {src} (jpg, png, webp, bmp, tif or gif, in any sub-folder)")
    joint = joint_for(manifest)
    job = job_description(settings, joint)
    work = claim(out, job)
    done = done_keys(work)
    todo = [path for path, size in photos.items() if (path, size) not in done]
    pinned = settings.model_copy(update={"model_version": job["version"]})
    if todo and engine == "ray":
        todo_keys = [(store.join(path), photos[path]) for path in todo]
        ray_engine.run_job(todo_keys, store, FaceJob(str(work), joint), pinned, options)
    elif todo:
        local.share_cores(settings)
        recognizer = load_recognizer(pinned)
        job_ = FaceJob(str(work), joint)
        job_.load()
        found = local.process_photos(
            recognizer, root, [root / p for p in todo], pinned, job_.process, "faces"
        )
        for batch in batches(found, LOCAL_BATCH):
            job_.write(recognizer, batch)
    remove_part_temporaries(work)
    archive = read_archive(work, photos)
    if len(archive.errors) == len(photos):
        first = next(iter(sorted(archive.errors.items())))
        raise BatchInputError(
            f"none of the {len(photos)} files under {src} could be read ({first[0]}: {first[1]})"
        )
    unknown_threshold = same_person_threshold(manifest)
    placed = place(archive.faces, joint, unknown_threshold, group_threshold)
    facts = RunFacts(
        src,
        f"{manifest.backend} {manifest.version}, {manifest.features.name}"
        + ("" if joint is None else f" joined with {joint.companion.name}"),
        group_threshold,
        unknown_threshold,
        len(photos),
        len(archive.no_face),
        archive.errors,
    )
    write_output(out, placed, facts)
    shutil.rmtree(work)
    return ClusterSummary(
        len(photos), len(photos) - len(todo), placed, len(archive.no_face), len(archive.errors), skipped
    )


def batches(found: Iterator[Processed[PhotoFaces]], size: int) -> Iterator[list[Processed[PhotoFaces]]]:
    while batch := list(islice(found, size)):
        yield sorted(batch, key=lambda p: p.path)


def claim(out: Path, job: dict[str, Any]) -> Path:
    """DIR's working folder: made in a new or empty DIR, or found in an unfinished run of the same job."""
    if out.exists() and not out.is_dir():
        raise BatchInputError(f"--out {out} is a file; give a new folder")
    work = out.resolve() / WORK  # absolute: Ray's actors do not share the command's working folder
    if out.is_dir() and any(out.iterdir()):
        earlier = read_job(work)
        if earlier is None:
            raise BatchInputError(
                f"--out {out} already exists and holds no unfinished cluster run: give a new folder"
            )
        if earlier != job:
            changed = sorted(k for k in job if earlier.get(k) != job[k])
            raise BatchInputError(
                f"{out} holds faces found with another model ({', '.join(changed)} differ): use a new --out"
            )
        return work
    work.mkdir(parents=True, exist_ok=True)
    (work / JOB_FILE).write_text(json.dumps(job, indent=2), encoding="utf-8")
    return work


def format_summary(summary: ClusterSummary, out: Path) -> str:
    kinds: dict[str, int] = {"group": 0, "ungrouped": 0, "known": 0}
    for p in summary.placed:
        kinds[p.kind] += 1
    groups = len({p.name for p in summary.placed if p.kind == "group"})
    known = len({p.name for p in summary.placed if p.kind == "known"})
    resumed = f" ({summary.already_done} found by an earlier run)" if summary.already_done else ""
    return (
        f"{summary.photos} photos{resumed}: {len(summary.placed)} faces; {kinds['group']} in {groups} groups,"
        f" {kinds['ungrouped']} not grouped, {kinds['known']} named ({known} people the model knows);"
        f" {summary.no_face} photos without a face, {summary.errors} unreadable, {summary.skipped} non-image"
        f" files skipped. Open {out / 'index.html'}"
    )
