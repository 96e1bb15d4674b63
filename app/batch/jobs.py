"""What a batch command does with each photo, apart from the engine that runs it: a ``PhotoJob``.

Both engines list the photos, load the model once per worker (``load_recognizer``, as the
service does, and whatever else the job needs: its ``load``) and hand each photo to the job's
``process``; the Ray engine then hands each finished batch to the job's ``write``, and the
local engine gives the command its results in order. ``classify`` (``app.batch.rows``) and
``cluster`` (``app.cluster``) are two jobs on the same engines, so a photo is read, decoded and
recognised the same way in both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, Generic, TypeVar

from app.artifact.manifest import load_manifest, resolve_version_dir
from app.config import Settings
from app.model.recognizer import Recognizer

#: What ``process`` makes of one photo; it travels between processes on Ray, so it pickles.
Result = TypeVar("Result")


class JobFailed(Exception):
    """A job on a cluster stopped part way (storage failed, the cluster went away); what was written stays."""


@dataclass(frozen=True)
class Processed(Generic[Result]):
    """One photo done: where it is under the folder, its size in bytes when listed, and the job's result."""

    path: str
    size: int
    result: Result


class PhotoJob(ABC, Generic[Result]):
    """What a command does with each photo, and how it writes a batch of them (Ray: one part file each)."""

    def load(self) -> None:  # a hook: most jobs need nothing loaded
        """Load what ``process`` needs beyond the model, once per worker, before its first photo."""

    @abstractmethod
    def process(
        self, recognizer: Recognizer, path: PurePath, read: Callable[[], bytes], max_pixels: int
    ) -> Result:
        """One photo's result; ``read`` gives its bytes. A bad file is a result, never an exception."""

    @abstractmethod
    def write(self, recognizer: Recognizer, photos: list[Processed[Result]]) -> Counter[str]:
        """Write a batch of photos (sorted by path) as one file; return what it holds by ``status``."""


def model_description(settings: Settings) -> dict[str, Any]:
    """The model version and the settings that change answers: what a resumed job must find unchanged.

    Written beside a job's output (``_job.json``); mixing two models' answers in one output
    would make it answer two ways.
    """
    manifest = load_manifest(
        resolve_version_dir(settings.artifacts_dir, settings.classifier_backend, settings.model_version)
    )
    return {
        "backend": manifest.backend,
        "version": manifest.version,
        "classes": manifest.class_ids,
        "face_detector": settings.face_detector,
        "unknown_threshold": settings.unknown_threshold,
        "max_faces": settings.max_faces,
        "max_pixels": settings.max_pixels,
    }
