"""``python -m app classify SRC --out DST --engine ray``: the batch command spread over a Ray cluster.

A large photo store is more than one machine's threads get through in good time
(docs/scaling.md, "What limits it, and the cost per million photos"); Ray Data spreads the
same per-photo steps (``app.batch.rows.classify_photo`` and ``app.batch.rows.rows``, so the
rows are the local engine's) over every core of a cluster:

- list: the driver lists SRC, a local folder or any URI pyarrow (``s3://``, ``gs://``,
  ``hdfs://``...) or fsspec knows, and hands Ray Data the (path, size) of each photo to do;
- read, classify and write: ``map_batches`` on a fixed pool of actors, each of which loads
  and verifies the model once (``load_recognizer``, as the service does), then reads, classifies
  and writes batch after batch, each batch as one part file in DST (Parquet, JSON lines or
  CSV); only the batch's counts go back to the driver.

Resumable, and exactly once. A row carries the photo's ``size`` besides the local
engine's columns: ``(path, size)`` is the key of a photo that is done. A rerun into the
same DST lists the keys its part files hold and reads only the other photos, so a photo
that changed size is classified again. A part file is written under a hidden temporary
name and then renamed, so DST never holds half a file, and it is named after the keys it
holds, so a batch that Ray retries (an actor killed, a node lost) replaces the same file
instead of adding a second one. A photo's rows are written in one file by the call that
classified it, so a photo is in DST whole or not at all.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import socket
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath
from typing import Any

import cv2
import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import ray
import ray.data
from ray.data import ActorPoolStrategy

from app.batch.jobs import JobFailed, PhotoJob, Processed, model_description
from app.batch.options import RayOptions
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
from app.model.host import load_recognizer
from app.model.recognizer import Recognizer

#: Output formats of the Ray engine, chosen by the suffix of DST (a folder of part files).
RAY_FORMATS = {".parquet": "parquet", **FORMATS}
#: The column a Ray row adds to the local engine's: with ``path``, the key of a photo that is done.
KEY_COLUMNS = ("path", "size")
#: In DST beside the part files: which model and settings wrote them.
JOB_FILE = "_job.json"
PART_PREFIX = "part-"
#: The ``status`` of a row, counted per batch by the actors.
STATUSES = ("face", "no_face", "error")
#: Files an actor reads at once, ahead of its classifying threads: reading waits on storage
#: (an object store's round trip is tens of milliseconds), not on a CPU.
READ_AHEAD = 8
#: Seconds a named cluster's head has to accept a connection before the job gives up.
CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Store:
    """A folder on some filesystem: a local one, or what a URI names."""

    fs: pafs.FileSystem
    path: str

    def join(self, name: str) -> str:
        return f"{self.path.rstrip('/')}/{name}"


@dataclass(frozen=True)
class RaySummary:
    #: Image files under SRC; how many of them DST held already; how many this run classified.
    photos: int
    already_done: int
    classified: int
    #: Rows written by this run, by status.
    counts: dict[str, int]
    #: Files under SRC whose suffix is not an image suffix: not classified.
    skipped: int
    part_files: int


def open_store(uri: str) -> Store:
    """The filesystem and path of a local folder or a URI: pyarrow's own filesystems first, then fsspec's."""
    if "://" not in uri:
        return Store(pafs.LocalFileSystem(), Path(uri).resolve().as_posix())
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except OSError as exc:  # e.g. an s3:// bucket whose region cannot be looked up
        raise BatchInputError(f"cannot open {uri}: {exc}") from exc
    except pa.ArrowInvalid:
        try:
            spec, path = fsspec.core.url_to_fs(uri)
        except (ImportError, ValueError) as exc:
            raise BatchInputError(f"no filesystem for {uri}: {exc}") from exc
        fs = pafs.PyFileSystem(pafs.FSSpecHandler(spec))
    return Store(fs, path.rstrip("/") or "/")


def output_format(dst: str) -> str:
    fmt = RAY_FORMATS.get(PurePosixPath(dst.rstrip("/")).suffix.lower())
    if fmt is None:
        raise BatchInputError(
            f"--out must end in {', '.join(RAY_FORMATS)} (a folder of part files), not {dst!r}"
        )
    return fmt


def list_photos(src: Store) -> tuple[dict[str, int], int]:
    """Every image under SRC as relative path -> size, and how many other files were skipped."""
    info = src.fs.get_file_info(src.path)
    if info.type != pafs.FileType.Directory:
        raise BatchInputError(f"{src.path} is not a folder")
    photos, skipped = {}, 0
    for entry in src.fs.get_file_info(pafs.FileSelector(src.path, recursive=True)):
        relative = PurePosixPath(entry.path).relative_to(src.path)
        if entry.type != pafs.FileType.File or is_hidden(relative):
            continue
        if is_image(relative):
            photos[relative.as_posix()] = entry.size
        else:
            skipped += 1
    return dict(sorted(photos.items())), skipped


def part_files(dst: Store, fmt: str) -> list[str]:
    """The finished part files in DST (temporary ones are hidden, ``_job.json`` is not a part)."""
    selector = pafs.FileSelector(dst.path, allow_not_found=True)
    return sorted(
        e.path
        for e in dst.fs.get_file_info(selector)
        if e.type == pafs.FileType.File
        and e.base_name.startswith(PART_PREFIX)
        and e.base_name.endswith(f".{fmt}")
    )


def done_keys(dst: Store, fmt: str) -> set[tuple[str, int]]:
    """The (path, size) of every photo that has rows in DST."""
    files = part_files(dst, fmt)
    if not files:
        return set()
    keys = pa.schema([("path", pa.string()), ("size", pa.int64())])
    table = pads.dataset(files, schema=keys, format="json" if fmt == "jsonl" else fmt, filesystem=dst.fs)
    done = table.to_table(columns=list(KEY_COLUMNS)).to_pydict()
    return set(zip(done["path"], done["size"], strict=True))


def job_description(settings: Settings, fmt: str) -> dict[str, Any]:
    """What makes rows comparable: the output format, the model and the settings that change answers."""
    return {"format": fmt, **model_description(settings)}


def claim_destination(dst: Store, job: dict[str, Any]) -> None:
    """Write DST's ``_job.json``, or check that a resumed DST was written with the same model and settings.

    Mixing the rows of two model versions in one DST would make it answer two ways.
    """
    dst.fs.create_dir(dst.path, recursive=True)
    path = dst.join(JOB_FILE)
    if dst.fs.get_file_info(path).type == pafs.FileType.File:
        with dst.fs.open_input_stream(path) as stream:
            earlier = json.loads(stream.read())
        if earlier != job:
            changed = sorted(k for k in job if earlier.get(k) != job[k])
            raise BatchInputError(
                f"{dst.path} holds rows of another run ({', '.join(changed)} differ): use a new --out"
            )
        return
    write_atomically(dst, JOB_FILE, json.dumps(job, indent=2).encode())


def write_atomically(dst: Store, name: str, data: bytes) -> None:
    """Write under a hidden temporary name, then rename: readers see the whole file or none."""
    temporary = dst.join(f".{name}.{uuid.uuid4().hex}.tmp")
    with dst.fs.open_output_stream(temporary) as stream:
        stream.write(data)
    dst.fs.move(temporary, dst.join(name))


def row_schema(classes: list[str]) -> pa.Schema:
    """The local engine's row as Arrow types; struct fields keep the JSON's key order."""
    box = pa.struct([(k, pa.int64()) for k in ("x", "y", "width", "height")])
    return pa.schema(
        [
            ("path", pa.string()),
            ("status", pa.string()),
            ("face", pa.int64()),
            ("box", box),
            ("label", pa.string()),
            ("confidence", pa.float64()),
            ("probabilities", pa.struct([(c, pa.float64()) for c in classes])),
            ("error", pa.string()),
        ]
    )


class ClassifyJob(PhotoJob[PhotoResult]):
    """``classify`` on the Ray engine: each photo's rows, a batch's rows written as one part file in DST."""

    def __init__(self, src: Store, dst: Store, fmt: str) -> None:
        self.root = PurePosixPath(src.path)
        self.dst = dst
        self.fmt = fmt

    def process(
        self, recognizer: Recognizer, path: PurePath, read: Callable[[], bytes], max_pixels: int
    ) -> PhotoResult:
        return classify_photo(recognizer, path, read, max_pixels)

    def write(self, recognizer: Recognizer, photos: list[Processed[PhotoResult]]) -> Counter[str]:
        out = [{**row, "size": photo.size} for photo in photos for row in rows(photo.result, self.root)]
        write_atomically(self.dst, part_name(photos, self.fmt), encode(out, self.fmt, recognizer.classes))
        return Counter(row["status"] for row in out)


class PhotoClassifier:
    """A Ray Data actor: loads the model once, then runs a ``PhotoJob`` on batch after batch.

    The job writes each batch itself (``classify``: a part file), rather than a ``Datasink``
    after the actor: Ray Data cannot fuse a write into an actor pool's map, so each write was
    a task of its own. Once a node runs more worker processes than it has CPUs (the actors
    and Ray Data's own do), Ray ends idle task workers, so writes kept starting new
    processes, and each one imported this module (OpenCV, ONNX Runtime, the model code) to
    unpickle the sink: two actors were then no faster than one (docs/scaling.md, "Two actors
    were no faster than one: the cause and the fix"). Writing here starts no process.

    It reads its photos too, for the same reason: read tasks were processes of their own,
    and every photo's bytes went through the object store to reach an actor. A batch holds
    only paths and the sizes the listing saw.
    """

    def __init__(self, settings: Settings, src: Store, job: PhotoJob[Any]) -> None:
        # OpenCV's own thread pool is as large as the machine; Ray gave this actor
        # ``inference_threads`` CPUs, and more threads than that only fight the other actors.
        cv2.setNumThreads(settings.inference_threads)
        self.recognizer = load_recognizer(settings)
        self.src = src
        self.root = PurePosixPath(src.path)
        self.max_pixels = settings.max_pixels
        self.pool = ThreadPoolExecutor(settings.inference_threads, thread_name_prefix="classify")
        self.readers = ThreadPoolExecutor(READ_AHEAD, thread_name_prefix="read")
        self.job = job
        job.load()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Process and write one batch; what flows on to the driver is only its counts."""

        def one(path: str, size: int, data: Future[bytes]) -> Processed[Any]:
            result = self.job.process(self.recognizer, PurePosixPath(path), data.result, self.max_pixels)
            return Processed(PurePosixPath(path).relative_to(self.root).as_posix(), int(size), result)

        reads = [self.readers.submit(self.read, path) for path in batch["path"]]
        photos = sorted(self.pool.map(one, batch["path"], batch["size"], reads), key=lambda p: p.path)
        counts = self.job.write(self.recognizer, photos)
        return {name: np.array([counts[name]]) for name in STATUSES} | {"photos": np.array([len(photos)])}

    def read(self, path: str) -> bytes:
        with self.src.fs.open_input_stream(path) as stream:
            return stream.read()


def encode(out: list[dict[str, Any]], fmt: str, classes: list[str]) -> bytes:
    """A part file's bytes: the rows as Parquet, or as the local engine writes JSON lines or CSV."""
    if fmt == "parquet":
        schema = row_schema(classes).append(pa.field("size", pa.int64()))
        buffer = pa.BufferOutputStream()
        pq.write_table(pa.Table.from_pylist(out, schema), buffer)
        return buffer.getvalue().to_pybytes()
    text = io.StringIO(newline="")
    writer = RowWriter(text, fmt, classes, extra=("size",))
    for row in out:
        writer.write(row)
    return text.getvalue().encode()


def part_name(photos: list[Processed[Any]], fmt: str) -> str:
    """Named after the keys it holds, so a retried write lands on the same file."""
    keys = "\n".join(f"{p.path}\t{p.size}" for p in photos)
    return f"{PART_PREFIX}{hashlib.sha256(keys.encode()).hexdigest()[:24]}.{fmt}"


def remove_temporaries(dst: Store) -> None:
    """Temporary files of writes that were killed; only a finished run removes them."""
    for entry in dst.fs.get_file_info(pafs.FileSelector(dst.path)):
        if entry.base_name.startswith(f".{PART_PREFIX}") and entry.base_name.endswith(".tmp"):
            dst.fs.delete_file(entry.path)


def classify_store(src_uri: str, dst_uri: str, settings: Settings, options: RayOptions) -> RaySummary:
    """Classify every photo under SRC that DST does not hold yet, on the Ray cluster ``ray.init`` joins."""
    fmt = output_format(dst_uri)
    src, dst = open_store(src_uri), open_store(dst_uri)
    job = job_description(settings, fmt)
    photos, skipped = list_photos(src)
    claim_destination(dst, job)
    done = done_keys(dst, fmt)
    todo = [(src.join(path), size) for path, size in photos.items() if (path, size) not in done]
    pinned = settings.model_copy(update={"model_version": job["version"]})
    totals = run_job(todo, src, ClassifyJob(src, dst, fmt), pinned, options)
    remove_temporaries(dst)
    counts = {status: totals[status] for status in STATUSES}
    already = len(photos) - len(todo)
    return RaySummary(len(photos), already, totals["photos"], counts, skipped, totals["parts"])


def run_job(
    todo: list[tuple[str, int]], src: Store, job: PhotoJob[Any], settings: Settings, options: RayOptions
) -> Counter[str]:
    """Run ``job`` over the (path, size) of each photo to do, joining a cluster unless one is joined.

    Returns what the job's batches held by status, the photos and the batches (``parts``).
    A failure part way is ``JobFailed``: what the job wrote is kept, for a rerun to resume.
    """
    if not todo:
        return Counter()
    started = not ray.is_initialized()
    if started:
        join_cluster(options.address)
    try:
        return run(todo, src, job, settings, options)
    except (ray.exceptions.RayError, OSError) as exc:
        reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise JobFailed(
            f"{reason}; the photos written are kept: rerun with the same --out to resume"
        ) from exc
    finally:
        if started:
            ray.shutdown()


def join_cluster(address: str | None) -> None:
    """``ray.init``, failing in one line (``JobFailed``) when no cluster answers at ``address``.

    Given a host and port where nothing listens, ``ray.init`` keeps retrying, deaf to
    SIGTERM; so the head's port is tried first, with a timeout.
    """
    host, _, port = (address or "").removeprefix("ray://").rpartition(":")
    if host and port.isdigit():
        try:
            socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
        except OSError as exc:
            raise JobFailed(f"no Ray cluster answers at {address}: {exc.strerror or exc}") from exc
    try:
        ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    except ConnectionError as exc:  # "auto" and RAY_ADDRESS with no cluster running
        raise JobFailed(f"cannot join the Ray cluster: {exc}") from exc


def batch_sizes(photos: int, actors: int, most: int, least: int = 1) -> list[int]:
    """Photos per batch, in order: ``most`` each, then smaller and smaller towards the end.

    Each batch is half of what is left per actor, at most ``most`` and at least ``least``
    (an actor's threads; guided self-scheduling). Equal batches to the end left one actor
    idle while another finished its last one or two (docs/scaling.md, "The end of a job
    left a core idle"); with the last batches a few photos each, the actors finish within
    a photo or two of each other. Only about ``2 * actors * log2(most)`` batches, and part
    files, are smaller.
    """
    sizes, left = [], photos
    while left:
        size = min(left, max(least, min(most, -(-left // (2 * actors)))))
        sizes.append(size)
        left -= size
    return sizes


def run(
    todo: list[tuple[str, int]], src: Store, job: PhotoJob[Any], settings: Settings, options: RayOptions
) -> Counter[str]:
    """The Ray Data pipeline: batches of (path, size) to the actor pool, which reads, processes, writes.

    Returns the rows written by status, the photos and the part files. Ray Data hands the
    driver each batch's counts once, from the attempt that succeeded, however often a
    batch was retried.
    """
    threads = options.threads_per_actor
    actors = options.actors or max(1, int(ray.cluster_resources().get("CPU", 1)) // threads)
    blocks, start = [], 0
    for size in batch_sizes(len(todo), actors, options.batch_size, least=threads):
        chunk = todo[start : start + size]
        paths, sizes = [path for path, _ in chunk], [size for _, size in chunk]
        blocks.append(pa.table({"path": pa.array(paths, pa.string()), "size": pa.array(sizes, pa.int64())}))
        start += size
    # One block per batch, in this order; from_arrow would start a task per block to read
    # its metadata (worker processes of their own), from_blocks reads it here.
    photos = ray.data.from_blocks(blocks)
    classified = photos.map_batches(
        PhotoClassifier,
        fn_constructor_args=(settings.model_copy(update={"inference_threads": threads}), src, job),
        batch_size=None,  # a whole block: the batches are the blocks made above
        batch_format="numpy",
        compute=ActorPoolStrategy(size=actors),
        num_cpus=threads,
    )
    totals: Counter[str] = Counter()
    for written in classified.iter_rows():
        totals.update({**written, "parts": 1})
    return totals


def format_summary(summary: RaySummary, dst: str) -> str:
    c = summary.counts
    return (
        f"classified {summary.classified} photos: {c['face']} faces, {c['no_face']} photos without a face,"
        f" {c['error']} unreadable; {summary.already_done} of {summary.photos} photos were done already;"
        f" skipped {summary.skipped} non-image files; {summary.part_files} part files added to {dst}"
    )
