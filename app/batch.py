"""``python -m app classify DIR --out results.jsonl|results.csv``: classify a whole folder.

For bulk jobs, and for checking a model on a labelled folder. It loads the model
exactly as the service does (``ModelHost`` with the same ``Settings``: backend,
artifacts folder, version, detector, limits, inference threads), so a row here is
what ``POST /v1/classify`` would have answered for that file.

Output is one row per face; a photo without a face and a file that cannot be read
each get one row too (``status`` says which, ``error`` says why), so every image
file under DIR is accounted for and one bad file never stops a long run. When DIR
holds sub-folders named after the model's classes, the photos in them are scored
end to end with ``training.evaluate`` (the label of the largest face, a photo
without a face counting as wrong), the same rule the training report uses.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from tqdm import tqdm

from app.artifacts import ArtifactError
from app.config import Settings
from app.model_host import ModelHost
from app.recognizer import FaceResult, Recognizer
from training.dataset import IMAGE_SUFFIXES, Photo
from training.evaluate import PhotoAnswer, end_to_end_metrics

#: Output formats, chosen by the suffix of ``--out``.
FORMATS = {".jsonl": "jsonl", ".csv": "csv"}

Status = Literal["face", "no_face", "error"]


class BatchInputError(Exception):
    """The command line asks for something impossible (no such folder, unknown output format)."""


@dataclass(frozen=True)
class PhotoResult:
    """Everything learnt about one file: its faces, or why it could not be read."""

    path: Path
    faces: list[FaceResult]
    error: str | None = None


@dataclass(frozen=True)
class BatchSummary:
    photos: int
    faces: int
    no_face: int
    errors: int
    #: Files under DIR whose suffix is not an image suffix (notes, videos...): not classified.
    skipped: int
    #: ``training.evaluate.end_to_end_metrics`` over the photos in class folders, if any.
    metrics: dict[str, Any] | None


def find_images(root: Path) -> tuple[list[Path], int]:
    """Image files under ``root`` (recursively, sorted) and how many other files were skipped.

    The same rule as ``training.dataset.scan``: an image suffix in any case, no dotfiles.
    """
    images, skipped = [], 0
    for path in sorted(root.rglob("*")):
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES:
            images.append(path)
        else:
            skipped += 1
    return images, skipped


def classify_file(recognizer: Recognizer, path: Path, max_pixels: int) -> PhotoResult:
    """Read, decode and recognise one file; any failure becomes the row's error, never an exception.

    Every ``Exception`` is caught, not just ``ImageError``: in a run over thousands of
    files one unforeseen failure (a permission error, an OpenCV assertion on a strange
    image) should cost that file, not the run. The message keeps the exception type.
    """
    try:
        photo = recognizer.decode(path.read_bytes(), max_pixels)
        return PhotoResult(path, recognizer.recognize_photo(photo).faces)
    except Exception as exc:
        return PhotoResult(path, [], f"{type(exc).__name__}: {exc}")


def rows(result: PhotoResult, root: Path) -> Iterator[dict[str, Any]]:
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
    """Writes rows as JSON lines, or as CSV with the box and each class probability in their own columns."""

    def __init__(self, stream: TextIO, fmt: str, classes: list[str]) -> None:
        self.fmt = fmt
        self.stream = stream
        self.classes = classes
        if fmt == "csv":
            columns = ["path", "status", "face", "box_x", "box_y", "box_width", "box_height"]
            columns += ["label", "confidence", *(f"p_{c}" for c in classes), "error"]
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


def photo_answer(result: PhotoResult, label: str) -> PhotoAnswer:
    """The photo's answer as ``training.evaluate.answer_photos`` forms it: the largest face's label."""
    return PhotoAnswer.from_faces(Photo(result.path, label), result.faces)


def class_of(path: Path, root: Path, classes: set[str]) -> str | None:
    """The model class a photo is labelled with: its top folder under ``root``, if that is a class."""
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 and parts[0] in classes else None


def classify_folder(root: Path, out: Path, settings: Settings) -> BatchSummary:
    """Classify every image under ``root`` into ``out``; return the counts and, if labelled, the scores.

    Photos are processed ``settings.inference_threads`` at a time, as in the service: the
    recognizer's detector and extractor pools hold that many instances, and OpenCV and
    NumPy release the GIL, so two threads keep two cores busy.
    """
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise BatchInputError(f"--out must end in {' or '.join(FORMATS)}, not {out.name!r}")
    if not root.is_dir():
        raise BatchInputError(f"{root} is not a folder")
    images, skipped = find_images(root)
    recognizer = ModelHost(settings).load()  # verified and warmed up, as the service does
    classes = set(recognizer.classes)
    answers: list[PhotoAnswer] = []
    counts = {"face": 0, "no_face": 0, "error": 0}

    def one(path: Path) -> PhotoResult:
        return classify_file(recognizer, path, settings.max_pixels)

    with (
        out.open("w", encoding="utf-8", newline="") as stream,
        ThreadPoolExecutor(settings.inference_threads, thread_name_prefix="classify") as pool,
    ):
        writer = RowWriter(stream, fmt, recognizer.classes)
        results = pool.map(one, images)  # in input order, so the output is in path order
        for result in tqdm(results, total=len(images), desc="classify", unit="photo", disable=None):
            for row in rows(result, root):
                writer.write(row)
                counts[row["status"]] += 1
            label = class_of(result.path, root, classes)
            if label is not None:
                answers.append(photo_answer(result, label))
    metrics = end_to_end_metrics(answers, recognizer.classes) if answers else None
    return BatchSummary(len(images), counts["face"], counts["no_face"], counts["error"], skipped, metrics)


def format_summary(summary: BatchSummary, out: Path) -> str:
    """What the CLI prints at the end: counts, then the end-to-end scores of a labelled folder."""
    lines = [
        f"classified {summary.photos} photos: {summary.faces} faces, {summary.no_face} photos without a face,"
        f" {summary.errors} unreadable; skipped {summary.skipped} non-image files; rows in {out}"
    ]
    m = summary.metrics
    if m is not None:
        n = m["test_photos"]
        correct = round(m["accuracy"] * n)
        lines.append(
            f"end-to-end accuracy on {n} photos in class folders: {m['accuracy']:.1%} ({correct}/{n});"
            f" person among the faces: {m['person_found']:.1%}; a face found in {m['faces_found']}/{n}"
        )
        for cls, scores in m["per_class"].items():
            if scores["support"]:
                lines.append(f"  {cls:<24} recall {scores['recall']:.1%} of {int(scores['support'])} photos")
    return "\n".join(lines)


def main(root: Path, out: Path, settings: Settings) -> int:
    """The ``classify`` subcommand: 0 on success (bad files included), 1 if there was nothing to do."""
    try:
        summary = classify_folder(root, out, settings)
    except (BatchInputError, ArtifactError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_summary(summary, out))
    return 0 if summary.photos else 1
