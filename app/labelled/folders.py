"""Find the labelled photos in ``<root>/<person>/...`` and say what was skipped, and why.

Training reads its data this way, and the batch CLI scores labelled folders with the
same rules, so both live here, on the serving side that training builds on.

Real photo folders are messy: stray notes, ``.DS_Store`` and ``Thumbs.db``, copies
of one photo under two names, symlinks (some broken), sub-folders per year or trip,
empty folders. Photos anywhere under a person's folder are that person's; every
other file is listed as skipped with its reason, never a failure of the run. Each
photo is read once here: its sha256 keys the embedding cache and finds duplicates,
which would otherwise land on both sides of the train/test split.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from app.artifact.manifest import ClassInfo

log = logging.getLogger("app.dataset")  # the name its log lines have always carried

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jfif", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
CLASSES_FILE = "classes.json"
#: Files and folders that operating systems and tools leave in photo folders.
SYSTEM_NAMES = frozenset({"thumbs.db", "ehthumbs.db", "desktop.ini", "__macosx", "@eadir"})


class DatasetError(ValueError):
    """The folder holds nothing to work on; the message says why and what to do."""


@dataclass(frozen=True)
class Photo:
    path: Path
    label: str
    #: sha256 of the file's bytes ("" when the photo was not read, as in the batch CLI).
    sha256: str = ""


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str


@dataclass(frozen=True)
class Dataset:
    root: Path
    classes: list[ClassInfo]
    photos: list[Photo]
    skipped: list[Skipped]

    @property
    def class_ids(self) -> list[str]:
        return [c.id for c in self.classes]

    def keeping(self, photos: list[Photo], skipped: tuple[Skipped, ...] = ()) -> Dataset:
        """The same dataset with only ``photos`` (classes left without a photo go), more skips noted."""
        labels = {p.label for p in photos}
        return Dataset(
            self.root, [c for c in self.classes if c.id in labels], photos, [*self.skipped, *skipped]
        )

    def without(self, excluded: tuple[str, ...]) -> Dataset:
        """The same dataset minus some people."""
        return self.keeping([p for p in self.photos if p.label not in excluded])

    def fingerprint(self) -> str:
        """sha256 over every photo's label, name and content: equal only for the same data."""
        digest = hashlib.sha256()
        for photo in self.photos:
            digest.update(f"{photo.label}/{photo.path.name}\0{photo.sha256}".encode())
        return digest.hexdigest()


def _is_system(path: Path) -> bool:
    return path.name.startswith(".") or path.name.lower() in SYSTEM_NAMES


def scan(root: Path, max_per_class: int | None = None) -> Dataset:
    """List the photos under ``root``, one sub-folder per person, in a stable order.

    Each skipped file is logged as a warning with its reason. Raises ``DatasetError``
    when there is nothing to train on.
    """
    if not root.is_dir():
        raise DatasetError(f"data folder {root} does not exist or is not a folder")
    skipped: list[Skipped] = []
    folders, loose_photos = _person_folders(root, skipped)
    photos: list[Photo] = []
    seen: dict[str, Photo] = {}
    for folder in folders:
        found = []
        for path in _files_under(folder, skipped):
            photo = _read_photo(path, folder.name, skipped)
            if photo is None:
                continue
            first = seen.setdefault(photo.sha256, photo)
            if first is not photo:
                skipped.append(Skipped(path, f"duplicate: same bytes as {first.label}/{first.path.name}"))
                continue
            found.append(photo)
        if not found:
            skipped.append(Skipped(folder, "no photos in this person folder; person left out"))
        photos.extend(found[:max_per_class])
    for skip in skipped:
        log.warning("skipped %s: %s", skip.path, skip.reason)
    if not photos:
        hint = f"; the {loose_photos} photos directly in it need a folder per person" if loose_photos else ""
        raise DatasetError(
            f"no photos in person folders under {root} (expected {root}/<person>/<photo>){hint}"
        )
    labels = sorted({p.label for p in photos})
    return Dataset(root, _class_infos(root, labels), photos, skipped)


def _person_folders(root: Path, skipped: list[Skipped]) -> tuple[list[Path], int]:
    """The person folders directly under ``root``, and how many photos lie loose beside them."""
    folders = []
    loose_photos = 0
    for entry in sorted(root.iterdir()):
        if _is_system(entry):
            skipped.append(Skipped(entry, "hidden or system file"))
        elif entry.is_dir():
            folders.append(entry)
        elif entry.name == CLASSES_FILE:
            continue
        elif entry.is_symlink() and not entry.exists():
            skipped.append(Skipped(entry, "broken symbolic link"))
        else:
            loose_photos += entry.suffix.lower() in IMAGE_SUFFIXES
            skipped.append(Skipped(entry, "not inside a person folder"))
    return folders, loose_photos


def _files_under(folder: Path, skipped: list[Skipped]) -> list[Path]:
    """Every file under ``folder``, sub-folders and symlinks followed (each real folder once), sorted."""
    files: list[Path] = []
    visited = set()
    for current, dirs, names in os.walk(folder, followlinks=True):
        here = Path(current)
        real = here.resolve()
        if real in visited:
            skipped.append(Skipped(here, "folder already read (a symbolic link loop or a second link)"))
            dirs.clear()
            continue
        visited.add(real)
        for name in sorted(dirs):
            if _is_system(here / name):
                skipped.append(Skipped(here / name, "hidden or system folder"))
                dirs.remove(name)
        dirs.sort()
        files.extend(here / name for name in names)
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def _read_photo(path: Path, label: str, skipped: list[Skipped]) -> Photo | None:
    """The photo at ``path``, or None with the reason noted in ``skipped``."""
    if _is_system(path):
        reason = "hidden or system file"
    elif path.suffix.lower() not in IMAGE_SUFFIXES:
        reason = f"not a photo type training reads ({path.suffix or 'no extension'})"
    elif path.is_symlink() and not path.exists():
        reason = "broken symbolic link"
    else:
        try:
            data = path.read_bytes()
        except OSError as exc:
            reason = f"unreadable: {exc.strerror or exc}"
        else:
            if data:
                return Photo(path, label, hashlib.sha256(data).hexdigest())
            reason = "unreadable: empty file"
    skipped.append(Skipped(path, reason))
    return None


def _class_infos(root: Path, labels: list[str]) -> list[ClassInfo]:
    """Display names from an optional ``classes.json``; folder names otherwise."""
    extra: dict[str, dict] = {}
    path = root / CLASSES_FILE
    if path.is_file():
        try:
            extra = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("ignored %s (display names fall back to folder names): %s", path, exc)
        if not isinstance(extra, dict):
            log.warning("ignored %s: expected an object of class id -> details", path)
            extra = {}
    infos = []
    for label in labels:
        entry = extra.get(label)
        entry = entry if isinstance(entry, dict) else {}
        infos.append(
            ClassInfo(
                id=label,
                name=entry.get("name") or label.replace("_", " ").title(),
                character=entry.get("character"),
                picture=entry.get("picture"),
            )
        )
    return infos


def picture_path(root: Path, info: ClassInfo) -> Path | None:
    """The class picture named in ``classes.json``, relative to the data folder, if it exists."""
    if not info.picture:
        return None
    path = (root / info.picture).resolve()
    return path if path.is_file() else None
