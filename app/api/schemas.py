"""Typed request and response bodies, shown in the OpenAPI document at /docs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class ModelRef(BaseModel):
    backend: str = Field(examples=["svm"])
    version: str = Field(examples=["20261123-213217"])


class ImageSize(BaseModel):
    width: int
    height: int


class BoxOut(BaseModel):
    """A face's box in the uploaded image's pixels (after EXIF rotation)."""

    x: int
    y: int
    width: int
    height: int


class CorrectionRef(BaseModel):
    """A user's correction that decided a face's label (the trainer's ``POST /v1/corrections``)."""

    verdict: Literal["is", "is_not"] = Field(
        description="'is': the face is nearer to a face corrected as this person than to any training "
        "face; 'is_not': nearer to a face corrected as not this person than to any of theirs"
    )
    person: str = Field(examples=["elijah_wood"])


class FaceOut(BaseModel):
    box: BoxOut
    label: str = Field(
        description="The best class id, or 'unknown' when the face matches none of them",
        examples=["elijah_wood"],
    )
    confidence: float = Field(
        ge=0, le=1, description="Probability of the best class (0 when the model knows nobody)"
    )
    probabilities: dict[str, float] = Field(description="Probability of every class, in class order")
    quality: Literal["good", "low"] = Field(
        "good",
        description="'low': the face is under 32 px high where it was analysed, too small for a "
        "reliable name; such faces mostly come back 'unknown'",
    )
    correction: CorrectionRef | None = Field(
        None, description="Set when a user's correction near this face decided its label"
    )


class ClassifyResponse(BaseModel):
    model: ModelRef
    image: ImageSize
    faces: list[FaceOut] = Field(description="Every face found, sorted left to right; empty if none")
    faces_truncated: bool = Field(
        False, description="More faces were found than the limit; only the largest were classified"
    )


class ClassOut(BaseModel):
    id: str
    name: str
    character: str | None = None
    picture_url: str | None = None


class ModelInfo(BaseModel):
    backend: str = Field(description="The CLASSIFIER_BACKEND value: 'svm' (scikit-learn) or 'cnn' (Keras)")
    architecture: str = Field(
        description="What the trained model really is",
        examples=["linear SVM on FaceNet embeddings (Inception-ResNet-v1, 512-d)"],
    )
    version: str
    created: datetime
    classes: list[ClassOut]
    detector: str
    features: str
    unknown_threshold: float | None
    metrics: dict[str, Any]


class Health(BaseModel):
    status: str = Field(examples=["ok"])
    detail: str | None = None


class PageSettings(BaseModel):
    """What the web page needs to know besides the model."""

    trainer_url: str | None = Field(
        None, description="The trainer the page sends corrections to (TRAINER_URL); null: no corrections"
    )
