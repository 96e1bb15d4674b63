"""Find the labelled photos in ``<root>/<person>/<photo>`` and say what was skipped.

Real photo folders mix formats and hold stray files (``.DS_Store``, notes,
videos); those are listed as skipped with a reason rather than failing the run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from app.artifacts import ClassInfo

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jfif", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
CLASSES_FILE = "classes.json"


@dataclass(frozen=True)
class Photo:
    path: Path
    label: str


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

    def without(self, excluded: tuple[str, ...]) -> Dataset:
        """The same dataset minus some people."""
        return Dataset(
            self.root,
            [c for c in self.classes if c.id not in excluded],
            [p for p in self.photos if p.label not in excluded],
            self.skipped,
        )

    def fingerprint(self) -> str:
        """sha256 over every photo's label, name and content: equal only for the same data."""
        digest = hashlib.sha256()
        for photo in self.photos:
            digest.update(f"{photo.label}/{photo.path.name}\0".encode())
            digest.update(hashlib.sha256(photo.path.read_bytes()).digest())
        return digest.hexdigest()


def scan(root: Path, max_per_class: int | None = None) -> Dataset:
    """List the photos under ``root``, one sub-folder per class, in a stable order."""
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist")
    photos: list[Photo] = []
    skipped: list[Skipped] = []
    folders = []
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and not entry.name.startswith("."):
            folders.append(entry)
        elif entry.name != CLASSES_FILE:
            skipped.append(Skipped(entry, "not a class folder"))
    for folder in folders:
        found = []
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("."):
                found.append(Photo(path, folder.name))
            else:
                skipped.append(Skipped(path, "not an image file"))
        photos.extend(found[:max_per_class])
    labels = sorted({p.label for p in photos})
    if len(labels) < 2:
        raise ValueError(f"{root} needs photos in at least two class folders; found {labels}")
    return Dataset(root, _class_infos(root, labels), photos, skipped)


def _class_infos(root: Path, labels: list[str]) -> list[ClassInfo]:
    """Display names from an optional ``classes.json``; folder names otherwise."""
    extra: dict[str, dict] = {}
    path = root / CLASSES_FILE
    if path.is_file():
        extra = json.loads(path.read_text(encoding="utf-8"))
    infos = []
    for label in labels:
        entry = extra.get(label, {})
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
