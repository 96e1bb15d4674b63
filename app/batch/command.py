"""``python -m app classify SRC --out DST [--engine local|ray]``: the command, on the engine asked for.

Both engines load the model as the service does and write the same rows
(``app.batch.rows``). The Ray engine is imported only when asked for: Ray is an
optional extra, and a missing one is a usage error in one line, like any bad argument.
"""

from __future__ import annotations

import sys
from pathlib import Path

from app.artifact.manifest import ArtifactError
from app.batch import local
from app.batch.options import EngineName, RayOptions
from app.batch.rows import BatchInputError
from app.config import Settings

#: Exit status for bad input on the command line, as for every command of the project.
USAGE_ERROR = 2


def main(
    src: str | Path,
    out: str | Path,
    settings: Settings,
    engine: EngineName = "local",
    ray_options: RayOptions | None = None,
) -> int:
    """The ``classify`` subcommand: 0 on success (bad files included), 1 if there was nothing to do.

    Bad arguments (no such folder, an unknown output format, Ray missing) exit with 2.
    """
    try:
        if engine == "ray":
            return ray_main(str(src), str(out), settings, ray_options or RayOptions())
        local.share_cores(settings)
        summary = local.classify_folder(local.local_folder(src), Path(out), settings)
    except BatchInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except ArtifactError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # --out cannot be written, or the disk filled up
        print(f"error: {exc.strerror or exc}: {exc.filename or out}", file=sys.stderr)
        return 1
    print(local.format_summary(summary, Path(out)))
    return 0 if summary.photos else 1


def ray_main(src: str, out: str, settings: Settings, options: RayOptions) -> int:
    """``--engine ray``: imported only when asked for, since Ray is an optional extra."""
    try:
        from app.batch import ray_engine
    except ImportError as exc:
        if exc.name is None or exc.name.split(".")[0] not in {"ray", "pyarrow", "fsspec"}:
            raise
        raise BatchInputError(
            f"--engine ray needs the 'ray' extra ({exc.name} is missing): pip install -e '.[ray]'"
        ) from exc
    try:
        summary = ray_engine.classify_store(src, out, settings, options)
    except ray_engine.JobFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(ray_engine.format_summary(summary, out))
    return 0 if summary.photos else 1
