"""The ``local`` engine of ``python -m app classify``: threads on this machine (the default).

For bulk jobs, and for checking a model on a labelled folder. It loads the model
exactly as the service does (``load_recognizer`` with the same ``Settings``: backend,
artifacts folder, version, detector, limits, inference threads), so a row here is
what ``POST /v1/classify`` would have answered for that file.

Output is one row per face; a photo without a face and a file that cannot be read
each get one row too (``status`` says which, ``error`` says why), so every image
file under DIR is accounted for and one bad file never stops a long run. When DIR
holds sub-folders named after the model's classes, the photos in them are scored
end to end with ``app.labelled.scores`` (the label of the largest face, a photo
without a face counting as wrong), the same rule the training report uses.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from app.batch.rows import (
    FORMATS,
    BatchInputError,
    PhotoResult,
    RowWriter,
    classify_photo,
    is_hidden,
    is_image,
    rows,
)
from app.config import Settings
from app.labelled.folders import Photo
from app.model.host import load_recognizer
from app.model.recognizer import Recognizer

if TYPE_CHECKING:  # scikit-learn's metrics: imported when a folder is scored, not by the Ray driver
    from app.labelled.scores import PhotoAnswer


@dataclass(frozen=True)
class BatchSummary:
    photos: int
    faces: int
    no_face: int
    errors: int
    #: Files under DIR whose suffix is not an image suffix (notes, videos...): not classified.
    skipped: int
    #: ``app.labelled.scores.end_to_end_metrics`` over the photos in class folders, if any.
    metrics: dict[str, Any] | None


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


def classify_file(recognizer: Recognizer, path: Path, max_pixels: int) -> PhotoResult:
    """``classify_photo`` on a local file."""
    return classify_photo(recognizer, path, path.read_bytes, max_pixels)


def photo_answer(result: PhotoResult, label: str) -> PhotoAnswer:
    """The photo's answer as ``app.labelled.scores.answer_photos`` forms it: the largest face's label."""
    from app.labelled.scores import PhotoAnswer

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
        from app.labelled.scores import end_to_end_metrics

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
    only fights the others, for more CPU per photo than the Ray actors' one thread each
    (docs/benchmarks.md, "BlazeFace on every core per call"; bench/batch_ray.py).
    ONNX Runtime's sessions read ``OMP_NUM_THREADS`` when they are made
    (app/pipeline/onnx_session.py), so call this before the model loads; a value the user
    set is kept.
    """
    share = max(1, (os.cpu_count() or 1) // settings.inference_threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(share))
