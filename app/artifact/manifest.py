"""Versioned model artifacts: where they live, what the manifest says, and integrity checks.

The folder layout and the file names are in ``app.artifact.file_names``.

Every file a version holds is listed in the manifest with its sha256, and the
loader refuses a version whose files do not match: a half-copied or tampered
model is never served.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from app.artifact.file_names import LATEST, MANIFEST

_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

#: Parameters feature extractors gained after models were trained and committed, by extractor name,
#: with the value a manifest written before them meant: FaceNet cut every face by its box until it
#: warped faces onto a landmark template (``app.pipeline.features.facenet``). A model keeps being
#: served with the crop it was trained with.
FEATURE_PARAMS_BEFORE_RECORDED: dict[str, dict[str, Any]] = {"facenet": {"crop": "box"}}


class ArtifactError(Exception):
    """The requested model version is missing, incomplete or does not match its manifest."""


class ClassInfo(BaseModel):
    """One known person: the folder name is the id; the rest is for display."""

    id: str
    name: str
    character: str | None = None
    picture: str | None = Field(None, description="File name of the class picture inside the artifact")


class StageSpec(BaseModel):
    """A pipeline stage by registry name plus the parameters that rebuild it."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    def names(self, name: str, params: dict[str, Any]) -> bool:
        """Whether a stage of this name and parameters is this one (parameters compared as JSON)."""
        return self.name == name and json.loads(json.dumps(params)) == self.params


class UnknownSpec(BaseModel):
    """When to answer "unknown" instead of the best class.

    ``nearest_distance``: the cosine distance from the face's embedding to the
    nearest training face exceeds ``threshold``. ``none``: never.

    ``class_thresholds``, when people's thresholds differ (a person with few photos gets a
    looser one than a person with many): a face is unknown when it is farther than its
    person's threshold from every training face of that person; ``threshold`` is then
    the loosest of them.
    """

    method: Literal["none", "nearest_distance"] = "none"
    threshold: float | None = None
    class_thresholds: dict[str, float] | None = None


class Manifest(BaseModel):
    schema_version: int = 1
    backend: str
    version: str
    created: datetime
    classes: list[ClassInfo]
    detector: StageSpec
    features: StageSpec
    classifier: dict[str, Any] = Field(default_factory=dict)
    unknown: UnknownSpec = Field(default_factory=UnknownSpec)
    library_versions: dict[str, str] = Field(default_factory=dict)
    dataset: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    files: dict[str, str] = Field(default_factory=dict, description="file name -> sha256")

    @model_validator(mode="after")
    def _name_params_recorded_since(self) -> Manifest:
        """Spell out the feature parameters an older manifest leaves out, with the value it meant."""
        before = FEATURE_PARAMS_BEFORE_RECORDED.get(self.features.name, {})
        self.features.params = {**before, **self.features.params}
        return self

    @property
    def class_ids(self) -> list[str]:
        return [c.id for c in self.classes]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_version_name(version: str) -> str:
    """Refuse version strings that could escape the artifacts folder."""
    if not _VERSION_RE.match(version):
        raise ArtifactError(f"invalid model version {version!r}")
    return version


def resolve_version_dir(artifacts_dir: Path, backend: str, version: str | None = None) -> Path:
    """The folder of ``version``, or of the one ``LATEST`` names when ``version`` is None."""
    backend_dir = artifacts_dir / backend
    if version is None:
        pointer = backend_dir / LATEST
        try:
            version = pointer.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ArtifactError(f"no model for backend {backend!r}: cannot read {pointer}") from exc
    version_dir = backend_dir / check_version_name(version)
    if not version_dir.is_dir():
        raise ArtifactError(f"model version folder {version_dir} does not exist")
    return version_dir


def load_manifest(version_dir: Path) -> Manifest:
    """Read and verify a version: the manifest parses and every listed file matches its sha256."""
    path = version_dir / MANIFEST
    try:
        manifest = Manifest.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc}") from exc
    except ValueError as exc:
        raise ArtifactError(f"{path} is not a valid manifest: {exc}") from exc
    if not manifest.files:
        raise ArtifactError(f"{path} lists no files")
    for name, expected in manifest.files.items():
        file = version_dir / name
        if file.parent != version_dir:
            raise ArtifactError(f"{path} names a file outside its folder: {name!r}")
        if not file.is_file():
            raise ArtifactError(f"{file} is listed in the manifest but missing")
        actual = sha256_of(file)
        if actual != expected:
            raise ArtifactError(f"{file} does not match its manifest (sha256 {actual}, expected {expected})")
    return manifest


def write_manifest(version_dir: Path, manifest: Manifest) -> None:
    """Hash every file in ``version_dir`` into the manifest, then write it."""
    manifest.files = {
        p.name: sha256_of(p) for p in sorted(version_dir.iterdir()) if p.is_file() and p.name != MANIFEST
    }
    (version_dir / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")


def point_latest(backend_dir: Path, version: str) -> None:
    """Make ``version`` current; written to a temporary file and renamed, so readers never see half."""
    tmp = backend_dir / f".{LATEST}.tmp"
    tmp.write_text(version + "\n", encoding="utf-8")
    tmp.replace(backend_dir / LATEST)
