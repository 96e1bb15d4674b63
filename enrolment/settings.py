"""The trainer service's settings, read from the environment (or ``.env``) by pydantic-settings.

Its own settings carry an ``ENROL_`` prefix; the ones it shares with the classify
service (which backend, where the artifacts live, the API key) keep the classify
service's names, so one ``.env`` configures both sides the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.config import PROJECT_ROOT, BackendName, LogLevel, Port
from app.pipeline.decode import DEFAULT_MAX_PIXELS


class EnrolmentSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ENROL_", env_file=".env", extra="ignore", populate_by_name=True
    )

    store_dir: Path = Field(
        PROJECT_ROOT / "enrolment-data",
        description="The store: people.sqlite3, the photos, their cached embeddings",
    )
    artifacts_dir: Path = Field(
        PROJECT_ROOT / "artifacts",
        validation_alias=AliasChoices("ENROL_ARTIFACTS_DIR", "ARTIFACTS_DIR"),
        description="Where new versions are published (the classify service's ARTIFACTS_DIR)",
    )
    backend: BackendName = Field(
        "svm",
        validation_alias=AliasChoices("ENROL_BACKEND", "CLASSIFIER_BACKEND"),
        description="The backend the versions are built for",
    )
    api_key: SecretStr | None = Field(
        None,
        validation_alias="API_KEY",
        description="Required: without it every enrolment route answers 403",
    )
    max_photos_per_request: int = Field(20, gt=0, description="Photos in one upload (a zip counts its files)")
    max_request_bytes: int = Field(50 * 1024 * 1024, gt=0, description="Largest request body")
    max_photo_bytes: int = Field(10 * 1024 * 1024, gt=0, description="Largest single photo")
    max_people: int = Field(200, gt=0, description="People one model may know")
    max_pixels: int = Field(DEFAULT_MAX_PIXELS, gt=0, description="Largest photo, width x height")
    wait_s: float = Field(
        30.0,
        ge=0,
        description="A change waits this long for its version, then answers 202 with a build to poll",
    )
    seed_dir: Path | None = Field(
        None,
        description="An artifacts root whose LATEST version is copied in when ARTIFACTS_DIR has none yet "
        "(compose: the committed default model, into the empty named volume)",
    )
    retain_versions: int = Field(3, gt=0, description="Versions this service published that it keeps")
    search: Literal["svm", "full"] = Field(
        "svm",
        description="svm: the model search tries the SVM grid and the few-photo rules (seconds); "
        "full: also logistic regression and random forest, as the CLI does (several times slower)",
    )
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins of classify pages that may send corrections from the browser (CORS), "
        "comma-separated, e.g. http://127.0.0.1:8000",
    )
    host: str = Field("127.0.0.1", validation_alias=AliasChoices("ENROL_HOST", "HOST"))
    port: Port = Field(8100, validation_alias=AliasChoices("ENROL_PORT", "PORT"))
    log_level: LogLevel = "INFO"

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        """``ENROL_ALLOWED_ORIGINS=a,b`` as a list (an origin has no comma)."""
        if isinstance(value, str):
            return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        return value
