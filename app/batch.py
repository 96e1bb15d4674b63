"""``python -m app classify DIR --out results.jsonl|results.csv``: classify a whole folder.

This is the ``local`` engine (threads on one machine, the default). ``--engine ray``
runs the same per-photo steps on a Ray cluster instead (``app.batch_ray``).

For bulk jobs, and for checking a model on a labelled folder. It loads the model
exactly as the service does (``load_recognizer`` with the same ``Settings``: backend,
artifacts folder, version, detector, limits, inference threads), so a row here is
what ``POST /v1/classify`` would have answered for that file.

Output is one row per face; a photo without a face and a file that cannot be read
each get one row too (``status`` says which, ``error`` says why), so every image
file under DIR is accounted for and one bad file never stops a long run. When DIR
holds sub-folders named after the model's classes, the photos in them are scored
end to end with ``app.evaluation`` (the label of the largest face, a photo
without a face counting as wrong), the same rule the training report uses.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Literal, TextIO

from tqdm import tqdm

from app.artifacts import ArtifactError
from app.config import Settings
from app.dataset import IMAGE_SUFFIXES, Photo
from app.model_host import load_recognizer
from app.recognizer import FaceResult, Recognizer

if TYPE_CHECKING:  # scikit-learn's metrics: imported when a folder is scored, not by the Ray driver
    from app.evaluation import PhotoAnswer

#: Output formats, chosen by the suffix of ``--out``.
FORMATS = {".jsonl": "jsonl", ".csv": "csv"}

#: Exit status for bad input on the command line, as for every command of the project.
USAGE_ERROR = 2

Status = Literal["face", "no_face", "error"]


class BatchInputError(Exception):
    """The command line asks for something impossible (no such folder, unknown output format)."""


@dataclass(frozen=True)
class PhotoResult:
    """Everything learnt about one file: its faces, or why it could not be read."""

    path: PurePath
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
    #: ``app.evaluation.end_to_end_metrics`` over the photos in class folders, if any.
    metrics: dict[str, Any] | None


def is_hidden(relative: PurePath) -> bool:
    """A dotfile or anything inside a dot-folder (``.DS_Store``, ``.git/``): not one of the photos."""
    return any(part.startswith(".") for part in relative.parts)


def is_image(relative: PurePath) -> bool:
    """The same rule as ``app.dataset.scan``: an image suffix in any case (both engines use it)."""
    return relative.suffix.lower() in IMAGE_SUFFIXES


def find_images(root: Path) -> tuple[list[Path], int]:
    """Image files under ``root`` (recursively, sorted) and how many other files were skipped."""
    images, skipped = [], 0
    for path in sorted(root.rglob("*")):
        if not path.is_file() or is_hidden(path.relative_to(root)):
            continue
        if is_image(path):
            images.append(path)
        else:
            skipped += 1
    return images, skipped


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
        photo = recognizer.decode(read(), max_pixels)
        return PhotoResult(path, recognizer.recognize_photo(photo).faces)
    except Exception as exc:
        return PhotoResult(path, [], f"{type(exc).__name__}: {exc}")


def classify_file(recognizer: Recognizer, path: Path, max_pixels: int) -> PhotoResult:
    """``classify_photo`` on a local file."""
    return classify_photo(recognizer, path, path.read_bytes, max_pixels)


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


def photo_answer(result: PhotoResult, label: str) -> PhotoAnswer:
    """The photo's answer as ``app.evaluation.answer_photos`` forms it: the largest face's label."""
    from app.evaluation import PhotoAnswer

    return PhotoAnswer.from_faces(Photo(Path(result.path), label), result.faces)


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
    if not out.parent.is_dir():  # found now, not after the model has loaded
        raise BatchInputError(f"--out: the folder {out.parent} does not exist")
    images, skipped = find_images(root)
    recognizer = load_recognizer(settings)
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
    metrics = None
    if answers:
        from app.evaluation import end_to_end_metrics

        metrics = end_to_end_metrics(answers, recognizer.classes)
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


def local_folder(src: str | Path) -> Path:
    """The local engine reads a local folder; a URI needs the Ray engine."""
    if "://" in str(src):
        raise BatchInputError(f"{src} is a URI: the local engine reads local folders; use --engine ray")
    return Path(src)


def share_cores(settings: Settings) -> None:
    """Give each of the local engine's photos in flight its share of the cores, for the whole process.

    The service lets one photo's network calls use every core (the quickest single answer);
    a batch keeps ``inference_threads`` photos in flight, and there each call on all cores
    only fights the others: with two threads per call on 2 cores the local engine spent 105-118
    ms of CPU per photo, the Ray actors (one thread each, set by Ray) 88 (bench/batch_ray.py).
    ONNX Runtime's sessions read ``OMP_NUM_THREADS`` when they are made
    (app/pipeline/onnx_session.py), so call this before the model loads; a value the user
    set is kept.
    """
    share = max(1, (os.cpu_count() or 1) // settings.inference_threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(share))


def main(
    src: str | Path, out: str | Path, settings: Settings, engine: str = "local", **ray_options: Any
) -> int:
    """The ``classify`` subcommand: 0 on success (bad files included), 1 if there was nothing to do.

    Bad arguments (no such folder, an unknown output format, Ray missing) exit with 2.
    ``ray_options`` are the fields of ``app.batch_ray.RayOptions``.
    """
    try:
        if engine == "ray":
            return ray_main(str(src), str(out), settings, ray_options)
        share_cores(settings)
        summary = classify_folder(local_folder(src), Path(out), settings)
    except BatchInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except ArtifactError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # --out cannot be written, or the disk filled up
        print(f"error: {exc.strerror or exc}: {exc.filename or out}", file=sys.stderr)
        return 1
    print(format_summary(summary, Path(out)))
    return 0 if summary.photos else 1


def ray_main(src: str, out: str, settings: Settings, options: dict[str, Any]) -> int:
    """``--engine ray``: imported only when asked for, since Ray is an optional extra."""
    try:
        from app import batch_ray
    except ImportError as exc:
        if exc.name is None or exc.name.split(".")[0] not in {"ray", "pyarrow", "fsspec"}:
            raise
        raise BatchInputError(
            f"--engine ray needs the 'ray' extra ({exc.name} is missing): pip install -e '.[ray]'"
        ) from exc
    try:
        summary = batch_ray.classify_store(src, out, settings, batch_ray.RayOptions(**options))
    except batch_ray.JobFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(batch_ray.format_summary(summary, out))
    return 0 if summary.photos else 1
