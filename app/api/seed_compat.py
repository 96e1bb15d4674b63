"""``POST /classify_image``: the seed's endpoint, kept so clients written for the seed keep working.

The seed's page posted the dropped photo as a base64 data URL in the form field
``image_data`` and read back one entry per face::

    {"class": "elijah_wood", "class_probability": [3.21, 31.82, 62.22, 2.49, 0.26],
     "class_dictionary": {"billy_boyd": 0, "dominic_monaghan": 1, ...}}

with probabilities in percent, rounded to 2 places, in class-index order. This module
answers the same shape from the same model and decode path as ``/v1/classify``
(``app.api.inference``); new clients should use ``/v1/classify``.
"""

from __future__ import annotations

import base64
import binascii
import re

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import InferenceDep, ReadyModelDep, SettingsDep
from app.api.problems import ProblemError, problem_responses

router = APIRouter()

#: The seed's classify route; admission control and the API key key on it (``app.main``,
#: ``app.api.security``).
SEED_CLASSIFY_PATH = "/classify_image"

#: ``data:[<mediatype>][;param...];base64,<payload>``; the seed's page always sent this form.
_DATA_URL = re.compile(r"^data:[^,]*?;base64,", re.IGNORECASE)


class SeedFace(BaseModel):
    """One face, exactly as the seed's server described it."""

    model_config = ConfigDict(populate_by_name=True)

    class_: str = Field(
        alias="class", description="The best class id, or 'unknown'", examples=["elijah_wood"]
    )
    class_probability: list[float] = Field(
        description="Percent per class, rounded to 2 places, in class_dictionary index order",
        examples=[[3.21, 31.82, 62.22, 2.49, 0.26]],
    )
    class_dictionary: dict[str, int] = Field(
        description="Class id to its index in class_probability",
        examples=[{"billy_boyd": 0, "dominic_monaghan": 1, "elijah_wood": 2}],
    )


def decode_data_url(value: str) -> bytes:
    """The bytes of a base64 data URL (or of bare base64); a 400 problem if it is not valid base64."""
    text = value.strip()
    match = _DATA_URL.match(text)
    if match:
        text = text[match.end() :]
    elif text.startswith("data:"):
        raise ProblemError(400, "image_data is a data URL but not a base64 one (';base64,' is missing)")
    # Form encoding may turn '+' into ' ' and wrap long lines; neither is part of base64's alphabet.
    text = re.sub(r"\s", "", text.replace(" ", "+"))
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ProblemError(400, f"image_data is not valid base64: {exc}") from None
    if not data:
        raise ProblemError(400, "image_data is empty")
    return data


@router.post(
    SEED_CLASSIFY_PATH,
    response_model=list[SeedFace],
    response_model_by_alias=True,
    deprecated=True,
    summary="The seed's classify endpoint (deprecated: use POST /v1/classify)",
    description=(
        "Kept for clients written for the seed's page. Send the photo as a base64 data URL "
        "(`data:image/jpeg;base64,...`) in the form field `image_data`, url-encoded or multipart. "
        "Answers one entry per face, left to right; an empty list when there is no face."
    ),
    responses=problem_responses(400, 401, 413, 415, 422, 503),
    tags=["deprecated"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                media: {
                    "schema": {
                        "type": "object",
                        "required": ["image_data"],
                        "properties": {
                            "image_data": {
                                "type": "string",
                                "description": "The photo as a base64 data URL",
                                "examples": ["data:image/jpeg;base64,/9j/4AAQSkZJRg..."],
                            }
                        },
                    }
                }
                for media in ("application/x-www-form-urlencoded", "multipart/form-data")
            },
        }
    },
)
async def classify_image(
    request: Request,
    response: Response,
    settings: SettingsDep,
    model: ReadyModelDep,
    inference: InferenceDep,
) -> list[SeedFace]:
    # The form is read here rather than through a Form() parameter: Starlette caps a
    # multipart text field at 1 MB by default, and a photo as base64 is often larger.
    # The body as a whole is still capped by the BodySizeLimit middleware.
    form = await request.form(max_part_size=settings.max_upload_bytes)
    values = form.getlist("image_data")
    if len(values) != 1 or not isinstance(values[0], str):
        raise ProblemError(422, "send exactly one base64 data URL in the 'image_data' form field")
    data = decode_data_url(values[0])
    result = await inference.recognize_bytes(request, model, data)

    classes = model.classes
    dictionary = {class_id: index for index, class_id in enumerate(classes)}
    # The seed's page was served from elsewhere and read this answer cross-origin;
    # the seed's server allowed any origin on this endpoint, so this does too.
    response.headers["Access-Control-Allow-Origin"] = "*"
    return [
        SeedFace(
            class_=face.label,
            class_probability=[round(face.probabilities.get(c, 0.0) * 100, 2) for c in classes],
            class_dictionary=dictionary,
        )
        for face in result.faces
    ]
