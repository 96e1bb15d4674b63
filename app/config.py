"""Service settings, read from the environment (or ``.env``) by pydantic-settings."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, HttpUrl, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.pipeline.decode import DEFAULT_MAX_PIXELS

PROJECT_ROOT = Path(__file__).resolve().parent.parent


#: The registered names (``app.backends.BACKENDS``, ``app.pipeline.detect.DETECTORS``), spelled
#: out for pydantic and the type checker; tests/test_registries.py keeps them in step.
BackendName = Literal["svm", "cnn"]
DetectorName = Literal["blazeface", "centerface", "haar"]
#: ``logging``'s level names; ``LOG_LEVEL=info`` is read as INFO.
LogLevel = Annotated[
    Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"],
    BeforeValidator(lambda value: value.upper() if isinstance(value, str) else value),
]
#: The ports a service may listen on (0, "any free port", would leave the user guessing).
PORTS = range(1, 65536)
Port = Annotated[int, Field(ge=PORTS.start, le=PORTS.stop - 1)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    classifier_backend: BackendName = Field("svm", description="Which trained backend to serve")
    artifacts_dir: Path = Field(PROJECT_ROOT / "artifacts", description="Root of the versioned artifacts")
    model_version: str | None = Field(None, description="Serve this version instead of the one LATEST names")
    face_detector: DetectorName | None = Field(
        None, description="Override the detector the model was trained with"
    )
    unknown_threshold: float | None = Field(
        None, description="Override the calibrated distance above which a face is 'unknown'"
    )

    max_upload_bytes: int = Field(10 * 1024 * 1024, gt=0, description="Largest accepted image file")
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, gt=0, description="Largest accepted width x height")
    max_faces: int = Field(20, gt=0, description="Classify at most this many faces (the largest) per photo")
    request_timeout_s: float = Field(30.0, gt=0, description="Give up on one photo after this long")
    inference_threads: int = Field(2, gt=0, description="Photos processed at once by one worker")
    max_queue: int = Field(
        14, ge=0, description="Photos that may wait for a thread, per worker; past it, 503 with Retry-After"
    )
    max_queue_wait_s: float = Field(
        2.0,
        gt=0,
        description="Shed a photo at once (503, Retry-After) when the photos ahead would keep it "
        "waiting longer than this for a thread, each judged by its upload's size and what recent "
        "photos of that size took",
    )
    shutdown_grace_s: float = Field(
        20.0, gt=0, description="After SIGTERM, exit within this long; photos not answered by then get 503"
    )

    model_watch_interval_s: float = Field(
        5.0, ge=0, description="Check LATEST this often and swap in a new version; 0 turns it off"
    )
    log_level: LogLevel = "INFO"

    api_key: SecretStr | None = Field(None, description="When set, /v1/* requires this X-API-Key")
    trainer_url: HttpUrl | None = Field(
        None,
        description="The trainer (enrolment service) as the browser reaches it; when set, the web page "
        "offers to correct each face's answer there",
    )
    host: str = "127.0.0.1"
    port: Port = 8000
    workers: int = Field(1, gt=0, description="Uvicorn worker processes; each holds its own model")


@lru_cache
def get_settings() -> Settings:
    return Settings()


def describe_invalid(error: ValidationError, settings: type[BaseSettings]) -> str:
    """One line naming each bad setting as the environment spells it: ``... PORT='abc': ...``."""
    prefix = settings.model_config.get("env_prefix") or ""

    def variable(location: tuple[int | str, ...]) -> str:
        name = str(location[0])  # a field's name, or the alias it was read by (already in full)
        return (prefix + name if name in settings.model_fields else name).upper()

    problems = "; ".join(f"{variable(e['loc'])}={e['input']!r}: {e['msg']}" for e in error.errors())
    return f"a setting in the environment or .env: {problems}"
