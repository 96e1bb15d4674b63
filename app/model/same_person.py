"""Each embedding's measured same-person distances: how far apart one person's photos lie.

Measured once per embedding (name and params: the crop changes the distances) on the shared
photos' training split, never their test photos: the distance within which 99% of a person's
other photos lie from the nearest of k reference photos, for k photos per person. Training
takes its default unknown threshold from here when there are too few people or photos to
calibrate one (``training.unknown_threshold``); ``python -m app cluster`` puts two embeddings'
distances on one scale with them (``app.cluster.embedding``), both being measured the same way
on the same photos.
"""

from __future__ import annotations

from typing import Any

#: How every default below was measured; each row's provenance adds its pipeline and date.
_HOW_MEASURED = (
    "99th percentile of the cosine distance from a person's photo to the nearest of k other photos of "
    "them; 20 random draws of k per person from the training split (159 photos, seed 42) of the 5 "
    "shared hobbit folders, "
)
#: Default thresholds by embedding (name and params: the crop changes the distances) and photos per
#: person, with where they came from.
DEFAULT_THRESHOLDS: tuple[dict[str, Any], ...] = (
    {
        "embedding": "facenet",
        "params": {"margin": 0.2, "crop": "box"},
        "by_photos_per_person": {1: 0.707, 2: 0.602, 3: 0.547, 5: 0.485, 10: 0.45},
        "provenance": _HOW_MEASURED + "BlazeFace (back model, tiles) + FaceNet 20180408-102900 "
        "in int8 on ONNX Runtime, faces cut by their box; measured 2026-11-24 07:20 UTC by "
        "`bench/learning_curve.py --thresholds`",
    },
    {
        "embedding": "facenet",
        "params": {"margin": 0.2, "crop": "arcface"},
        "by_photos_per_person": {1: 0.647, 2: 0.562, 3: 0.545, 5: 0.461, 10: 0.437},
        "provenance": _HOW_MEASURED + "BlazeFace (back model; CenterFace for photos it would "
        "tile, up to 1280 px) + FaceNet 20180408-102900 in int8 on ONNX Runtime (ranges calibrated on "
        "aligned faces), faces warped onto the ArcFace template; measured 2026-12-07 10:07 UTC "
        "by `bench/learning_curve.py --thresholds`",
    },
    {
        "embedding": "dlib",
        "params": {"margin": 0.2},
        "by_photos_per_person": {1: 0.09, 2: 0.076, 3: 0.072, 5: 0.066, 10: 0.064},
        "provenance": _HOW_MEASURED + "BlazeFace (back model, tiles) + dlib's ResNet on dlib's "
        "template (150 px, padding 0.25) in float32 on ONNX Runtime; measured 2026-12-07 09:10 UTC by "
        "`bench/learning_curve.py --features dlib --thresholds`",
    },
)


def default_thresholds(embedding: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """The measured defaults for this embedding with these parameters, or None when none were measured."""
    return next(
        (d for d in DEFAULT_THRESHOLDS if d["embedding"] == embedding and d["params"] == params), None
    )


def same_person_distance(embedding: str, params: dict[str, Any]) -> float | None:
    """The measured distance for the most photos per person, or None when none was measured."""
    default = default_thresholds(embedding, params)
    if default is None:
        return None
    table = default["by_photos_per_person"]
    return float(table[max(table)])
