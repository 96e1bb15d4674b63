"""What both engines do with one file, and the rows they write for it.

Both engines list the same files as photos (``is_hidden``, ``is_image``), classify each
with ``classify_photo`` and turn the result into ``rows``: one per face, or one saying
there is no face or why the file could not be read. ``RowWriter`` writes rows as JSON
lines or CSV; the Ray engine adds Parquet and a ``size`` column (``app.batch.ray_engine``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Literal, TextIO

from app.labelled.folders import IMAGE_SUFFIXES
from app.model.recognizer import FaceResult, Recognizer

#: Output formats, chosen by the suffix of ``--out``.
FORMATS = {".jsonl": "jsonl", ".csv": "csv"}

Status = Literal["face", "no_face", "error"]


class BatchInputError(Exception):
    """The command line asks for something impossible (no such folder, unknown output format)."""


@dataclass(frozen=True)
class PhotoResult:
    """Everything learnt about one file: its faces, or why it could not be read."""

    path: PurePath
    faces: list[FaceResult]
    error: str | None = None


def is_hidden(relative: PurePath) -> bool:
    """A dotfile or anything inside a dot-folder (``.DS_Store``, ``.git/``): not one of the photos."""
    return any(part.startswith(".") for part in relative.parts)


def is_image(relative: PurePath) -> bool:
    """The same rule as ``app.labelled.folders.scan``: an image suffix in any case (both engines use it)."""
    return relative.suffix.lower() in IMAGE_SUFFIXES


def classify_photo(
    recognizer: Recognizer, path: PurePath, read: Callable[[], bytes], max_pixels: int
) -> PhotoResult:
    """Read, decode and recognise one file; any failure becomes the row's error, never an exception.

    Every ``Exception`` is caught, not just ``ImageError``: in a run over thousands of
    files one unforeseen failure (a permission error, an OpenCV assertion on a strange
    image) should cost that file, not the run. The message keeps the exception type.
    ``read`` gives the file's bytes: the local engine reads the file here, the Ray
    engine has read it already.
    """
    try:
        return PhotoResult(path, recognizer.recognize_bytes(read(), max_pixels).faces)
    except Exception as exc:
        return PhotoResult(path, [], f"{type(exc).__name__}: {exc}")


def rows(result: PhotoResult, root: PurePath) -> Iterator[dict[str, Any]]:
    """The output rows of one file: one per face, or one saying there is no face or an error."""
    base = {"path": result.path.relative_to(root).as_posix()}
    if result.error is not None or not result.faces:
        status: Status = "error" if result.error is not None else "no_face"
        yield {
            **base,
            "status": status,
            "face": None,
            "box": None,
            "label": None,
            "confidence": None,
            "probabilities": None,
            "error": result.error,
        }
        return
    for index, face in enumerate(result.faces):
        yield {
            **base,
            "status": "face",
            "face": index,
            "box": face.box.as_dict(),
            "label": face.label,
            "confidence": round(face.confidence, 6),
            "probabilities": {k: round(v, 6) for k, v in face.probabilities.items()},
            "error": None,
        }


class RowWriter:
    """Writes rows as JSON lines, or as CSV with the box and each class probability in their own columns.

    ``extra`` names columns some rows carry after the usual ones (the Ray engine's ``size``).
    """

    def __init__(self, stream: TextIO, fmt: str, classes: list[str], extra: Sequence[str] = ()) -> None:
        self.fmt = fmt
        self.stream = stream
        self.classes = classes
        if fmt == "csv":
            columns = ["path", "status", "face", "box_x", "box_y", "box_width", "box_height"]
            columns += ["label", "confidence", *(f"p_{c}" for c in classes), "error", *extra]
            self._csv = csv.DictWriter(stream, columns)
            self._csv.writeheader()

    def write(self, row: dict[str, Any]) -> None:
        if self.fmt == "jsonl":
            self.stream.write(json.dumps(row, ensure_ascii=False) + "\n")
            return
        flat = {k: v for k, v in row.items() if k not in {"box", "probabilities"}}
        for key, value in (row["box"] or {}).items():
            flat[f"box_{key}"] = value
        for cls in self.classes:
            flat[f"p_{cls}"] = (row["probabilities"] or {}).get(cls)
        self._csv.writerow(flat)
