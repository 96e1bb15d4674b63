"""Writes that survive ``kill -9`` and power loss: write, fsync, rename, fsync the folder.

A rename is atomic, so a reader sees the old file or folder or the whole new one; the
fsyncs make sure that what the rename points at is on disk before the rename itself
is, and that the rename is on disk before the caller reports success.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

#: Prefix of the hidden temporary names; leftovers of a killed process are removed at start-up.
TEMP_PREFIX = ".tmp-"


def fsync_dir(folder: Path) -> None:
    handle = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def write_file(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` atomically and durably."""
    tmp = path.with_name(f"{TEMP_PREFIX}{path.name}-{secrets.token_hex(4)}")
    try:
        with tmp.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def temp_dir_beside(final: Path) -> Path:
    """A fresh hidden folder next to ``final`` (same filesystem, so it can be renamed into place)."""
    return final.with_name(f"{TEMP_PREFIX}{final.name}-{secrets.token_hex(4)}")


def move_into_place(tmp_dir: Path, final: Path) -> None:
    """fsync every file in ``tmp_dir`` and the folder itself, then rename it to ``final``."""
    for path in tmp_dir.iterdir():
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
    fsync_dir(tmp_dir)
    tmp_dir.rename(final)
    fsync_dir(final.parent)


def remove_dir(folder: Path) -> None:
    """Hide ``folder`` by renaming it first, then delete it: never visible half-deleted."""
    hidden = temp_dir_beside(folder)
    folder.rename(hidden)
    fsync_dir(folder.parent)
    shutil.rmtree(hidden)


def remove_leftovers(folder: Path) -> list[Path]:
    """Delete the temporary files and folders a killed writer left in ``folder``; return them."""
    found = sorted(folder.glob(f"{TEMP_PREFIX}*")) if folder.is_dir() else []
    for path in found:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    return found
