"""Every face of every photo, found once on either engine and kept in DIR until the groups are written.

``FaceJob`` is the ``cluster`` command's ``PhotoJob`` (``app.batch.jobs``): it recognises a
photo as ``classify`` does (``Recognizer.recognize_decoded``: the same boxes, labels and
quality), keeps each face's embedding and sharpness, embeds each face the model cannot name a
second time with the companion embedding (``app.cluster.embedding``), and cuts each face out
with a margin while the pixels are decoded, so no photo is read twice. Each batch of photos
becomes one part file in ``DIR/.cluster/`` (NumPy arrays, so the local engine needs nothing Ray
brings), named after the photos it holds and written under a temporary name first: a run that
stops keeps what it wrote, and a rerun into the same DIR does only the other photos, as
``classify --engine ray`` does. The folder is hidden, so a training run pointed at DIR never
takes it for a person.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import cv2
import numpy as np

from app.batch.jobs import PhotoJob, Processed, model_description
from app.cluster.embedding import Joint
from app.config import Settings
from app.model.recognizer import UNKNOWN, FaceResult, Recognition, Recognizer
from app.pipeline.detect import Box
from app.pipeline.features import FeatureExtractor

#: DIR's working folder: the part files and ``JOB_FILE``.
WORK = ".cluster"
JOB_FILE = "job.json"
PART_PREFIX = "part-"
#: The margin cut around a face, as a share of its box on each side: the face is half the
#: image, as in an ordinary portrait, where the detector finds it again when training reads it.
FACE_MARGIN = 0.5
#: The longest side of a face image; a larger cut is shrunk (a face of 160 px is plenty to train on).
FACE_IMAGE_SIDE = 320
JPEG_QUALITY = 92
#: A face whose ``sharpness`` is below this is blurred: a Gaussian blur that leaves this much
#: moves a face's FaceNet embedding about half the unknown threshold from its sharp self
#: (``bench/cluster.py --blur``, docs/clustering.md). Sharp faces in photos score far higher.
BLURRED_BELOW = 50.0
#: The side a face is scaled to before its sharpness is measured, so that size does not count.
SHARPNESS_SIDE = 64


@dataclass(frozen=True)
class PhotoFaces:
    """What one photo gave: its content hash, its faces, their embeddings and cut-out images, or an error."""

    sha256: str
    faces: list[FaceResult]
    features: np.ndarray | None
    images: list[bytes]
    sharpness: list[float]
    error: str | None = None
    #: The companion embedding of each face the model cannot name (NaN for the named ones); None without one.
    companion: np.ndarray | None = None


def shrink(image: np.ndarray, side: int, square: bool = False) -> np.ndarray:
    """``image`` with its longer side ``side`` px (or ``side`` x ``side``), if it is larger.

    Averaging every pixel of a large face (``INTER_AREA``) cost more than the rest of cutting it
    out; so a bilinear step first brings it to twice the size, and averaging halves that.
    """
    height, width = image.shape[:2]
    scale = side / max(height, width)
    if scale >= 1.0 and not square:
        return image
    size = (side, side) if square else (max(1, round(width * scale)), max(1, round(height * scale)))
    if scale < 0.5:
        image = cv2.resize(image, (2 * size[0], 2 * size[1]), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def sharpness(rgb: np.ndarray, box: Box) -> float:
    """The variance of the Laplacian of the face's grey pixels at ``SHARPNESS_SIDE`` px: low when blurred."""
    height, width = rgb.shape[:2]
    x0, y0 = min(max(0, box.x), width - 1), min(max(0, box.y), height - 1)
    face = rgb[y0 : max(y0 + 1, box.y + box.height), x0 : max(x0 + 1, box.x + box.width)]
    grey = cv2.cvtColor(shrink(face, SHARPNESS_SIDE, square=True), cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def face_image(rgb: np.ndarray, box: Box) -> bytes:
    """The face in ``box`` with ``FACE_MARGIN`` around it (less at the photo's edges), as a JPEG."""
    height, width = rgb.shape[:2]
    dx, dy = round(box.width * FACE_MARGIN), round(box.height * FACE_MARGIN)
    x0, y0 = max(0, box.x - dx), max(0, box.y - dy)
    x1, y1 = min(width, box.x + box.width + dx), min(height, box.y + box.height + dy)
    cut = shrink(rgb[y0:y1, x0:x1], FACE_IMAGE_SIDE)
    ok, encoded = cv2.imencode(
        ".jpg", cv2.cvtColor(cut, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    )
    if not ok:
        raise ValueError(f"cannot encode a face of {cut.shape[1]}x{cut.shape[0]} pixels")
    return encoded.tobytes()


def find_faces(
    recognizer: Recognizer, companion: FeatureExtractor | None, read: Callable[[], bytes], max_pixels: int
) -> PhotoFaces:
    """Recognise one photo as ``classify`` does, keeping the embeddings and a cut-out of each face.

    ``companion`` embeds the faces the model cannot name once more (the only ones grouped).
    Like ``app.batch.rows.classify_photo``, any failure is the photo's error, never an
    exception: one strange file costs that file, not the run.
    """
    try:
        data = read()
        photo = recognizer.decode(data, max_pixels)
        found = recognizer.recognize_decoded(photo)
        boxes = [face.box.scaled(1.0 / photo.scale) for face in found.faces]  # in the decoded pixels
        images = [face_image(photo.rgb, box) for box in boxes]
        sharp = [sharpness(photo.rgb, box) for box in boxes]
        second = None if companion is None else companion_rows(companion, photo.rgb, found)
        digest = hashlib.sha256(data).hexdigest()
        return PhotoFaces(digest, found.faces, found.features, images, sharp, companion=second)
    except Exception as exc:
        return PhotoFaces("", [], None, [], [], f"{type(exc).__name__}: {exc}")


def companion_rows(companion: FeatureExtractor, rgb: np.ndarray, found: Recognition) -> np.ndarray:
    """The companion embedding of each face ``found`` does not name, NaN rows for the named ones."""
    unnamed = [i for i, face in enumerate(found.faces) if face.label == UNKNOWN]
    rows = np.full((len(found.faces), *companion.feature_shape), np.nan, np.float32)
    if unnamed:
        rows[unnamed] = companion.extract([companion.crop(rgb, found.detections[i]) for i in unnamed])
    return rows


class FaceJob(PhotoJob[PhotoFaces]):
    """``python -m app cluster`` on an engine: each photo's faces, a batch written as one part file."""

    def __init__(self, work: str, joint: Joint | None) -> None:
        self.work = work
        self.joint = joint
        self.companion: FeatureExtractor | None = None

    def load(self) -> None:
        if self.joint is not None:
            self.companion = self.joint.load()

    def process(
        self, recognizer: Recognizer, path: PurePath, read: Callable[[], bytes], max_pixels: int
    ) -> PhotoFaces:
        if self.joint is not None and self.companion is None:
            raise RuntimeError("FaceJob.load() was not called: the companion embedding is not loaded")
        return find_faces(recognizer, self.companion, read, max_pixels)

    def write(self, recognizer: Recognizer, photos: list[Processed[PhotoFaces]]) -> Counter[str]:
        keys = "\n".join(f"{p.path}\t{p.size}" for p in photos)
        name = f"{PART_PREFIX}{hashlib.sha256(keys.encode()).hexdigest()[:24]}.npz"
        write_atomically(Path(self.work) / name, encode_part(photos))
        counts: Counter[str] = Counter()  # as ``classify`` counts its rows: a face each, else a photo
        for photo in photos:
            found = photo.result
            counts["error" if found.error else "face" if found.faces else "no_face"] += len(found.faces) or 1
        return counts


def write_atomically(path: Path, data: bytes) -> None:
    """Write under a hidden temporary name, then rename: DIR never holds half a part file."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    temporary.write_bytes(data)
    temporary.replace(path)


def encode_part(photos: list[Processed[PhotoFaces]]) -> bytes:
    """A batch as NumPy arrays in one ``.npz``: a row per photo, a row per face, face images end to end."""
    faces = [(i, j, face) for i, p in enumerate(photos) for j, face in enumerate(p.result.faces)]
    features = [p.result.features for p in photos if p.result.features is not None]
    companion = [p.result.companion for p in photos if p.result.companion is not None and p.result.faces]
    boxes = [[f.box.x, f.box.y, f.box.width, f.box.height] for *_, f in faces]
    images = [image for p in photos for image in p.result.images]
    arrays = {
        "photo_path": np.array([p.path for p in photos], dtype=str),
        "photo_size": np.array([p.size for p in photos], np.int64),
        "photo_sha256": np.array([p.result.sha256 for p in photos], dtype=str),
        "photo_error": np.array([p.result.error or "" for p in photos], dtype=str),
        "face_photo": np.array([i for i, _, _ in faces], np.int64),
        "face_index": np.array([j for _, j, _ in faces], np.int64),
        "face_box": np.array(boxes, np.int64).reshape(-1, 4),
        "face_label": np.array([f.label for *_, f in faces], dtype=str),
        "face_confidence": np.array([f.confidence for *_, f in faces], np.float64),
        "face_quality": np.array([f.quality for *_, f in faces], dtype=str),
        "face_sharpness": np.array([photos[i].result.sharpness[j] for i, j, _ in faces], np.float64),
        "face_embedding": np.concatenate(features).astype(np.float32) if features else np.zeros((0, 0)),
        "face_companion": np.concatenate(companion) if companion else np.zeros((0, 0), np.float32),
        "face_image": np.frombuffer(b"".join(images), np.uint8),
        "face_image_end": np.cumsum([len(image) for image in images], dtype=np.int64),
    }
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]  # numpy's stub types the keywords as allow_pickle
    return buffer.getvalue()


@dataclass(frozen=True, eq=False)
class Face:
    """One face found in the archive, as the part files keep it."""

    photo: str
    sha256: str
    index: int
    box: Box
    label: str
    confidence: float
    #: The service's: ``low`` for a face too small for a reliable name.
    quality: str
    sharpness: float
    embedding: np.ndarray
    #: Its companion embedding (``app.cluster.embedding``): NaN for a face the model named; None without one.
    companion: np.ndarray | None
    #: Where its image is: the part file, and the image's first and last byte + 1 in it.
    image: tuple[Path, int, int]

    @property
    def grade(self) -> str:
        """``good``, ``low`` (too small, as the service says) or ``blurred``: only good faces are grouped."""
        if self.quality != "good":
            return self.quality
        return "blurred" if self.sharpness < BLURRED_BELOW else "good"


@dataclass(frozen=True)
class Archive:
    """What the part files hold for the photos listed now: every face, and the photos that gave none."""

    faces: list[Face]
    #: Relative path -> error, for the files that could not be read.
    errors: dict[str, str]
    no_face: list[str]


def read_archive(work: Path, listed: dict[str, int] | None = None) -> Archive:
    """Every part file in ``work``, keeping only the photos ``listed`` (path -> size) now, each once."""
    faces: list[Face] = []
    errors: dict[str, str] = {}
    no_face: list[str] = []
    done: set[tuple[str, int]] = set()
    for part in sorted(work.glob(f"{PART_PREFIX}*.npz")):
        with np.load(part, allow_pickle=False) as arrays:  # all but the images, read when written
            columns = {name: arrays[name] for name in arrays.files if name != "face_image"}
        ends = columns["face_image_end"]
        second = columns["face_companion"]
        starts = np.concatenate([[0], ends[:-1]]).astype(np.int64)
        by_photo: dict[int, list[int]] = {}
        for row, photo in enumerate(columns["face_photo"]):
            by_photo.setdefault(int(photo), []).append(row)
        for i, (path, size) in enumerate(zip(columns["photo_path"], columns["photo_size"], strict=True)):
            key = (str(path), int(size))
            if key in done or (listed is not None and listed.get(key[0]) != key[1]):
                continue
            done.add(key)
            if columns["photo_error"][i]:
                errors[key[0]] = str(columns["photo_error"][i])
            elif i not in by_photo:
                no_face.append(key[0])
            for row in by_photo.get(i, []):
                x, y, w, h = (int(v) for v in columns["face_box"][row])
                faces.append(
                    Face(
                        photo=key[0],
                        sha256=str(columns["photo_sha256"][i]),
                        index=int(columns["face_index"][row]),
                        box=Box(x, y, w, h),
                        label=str(columns["face_label"][row]),
                        confidence=float(columns["face_confidence"][row]),
                        quality=str(columns["face_quality"][row]),
                        sharpness=float(columns["face_sharpness"][row]),
                        embedding=columns["face_embedding"][row],
                        companion=second[row] if len(second) else None,
                        image=(part, int(starts[row]), int(ends[row])),
                    )
                )
    return Archive(faces, errors, no_face)


def done_keys(work: Path) -> set[tuple[str, int]]:
    """The (path, size) of every photo the part files in ``work`` hold."""
    done = set()
    for part in sorted(work.glob(f"{PART_PREFIX}*.npz")):
        with np.load(part, allow_pickle=False) as arrays:
            done |= {
                (str(p), int(s)) for p, s in zip(arrays["photo_path"], arrays["photo_size"], strict=True)
            }
    return done


def face_images(faces: list[Face]) -> Iterator[bytes]:
    """Each face's image, in order, reading each part file's images once in a row of its faces."""
    loaded: tuple[Path, np.ndarray] | None = None
    for face in faces:
        part, start, end = face.image
        if loaded is None or loaded[0] != part:
            with np.load(part, allow_pickle=False) as arrays:
                loaded = (part, arrays["face_image"])
        yield loaded[1][start:end].tobytes()


def job_description(settings: Settings, joint: Joint | None) -> dict[str, Any]:
    """What makes two runs' faces comparable: the model and settings, the companion, how faces are cut out."""
    companion = None if joint is None else joint.companion.model_dump()
    return {
        **model_description(settings),
        "companion": companion,
        "face_margin": FACE_MARGIN,
        "face_image_side": FACE_IMAGE_SIDE,
    }


def read_job(work: Path) -> dict[str, Any] | None:
    path = work / JOB_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def remove_temporaries(work: Path) -> None:
    """Temporary files of part files whose writing was cut short."""
    for path in work.glob(f".{PART_PREFIX}*.tmp"):
        path.unlink(missing_ok=True)
