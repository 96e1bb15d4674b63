"""What the import-linter contracts (pyproject.toml, run by make lint and make test) cannot see.

Those contracts hold the layering that docs/architecture.md draws: ``training`` builds on
``app``, and ``enrolment`` on both, never the other way round. Here: the serving image
does not even contain ``training`` or ``enrolment``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("package", ["training", "enrolment"])
def test_serving_image_leaves_training_out(package: str) -> None:
    """Only the trainer stage, built on the api image, copies the training and enrolment packages in."""
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    trainer = dockerfile.index("FROM api AS trainer")
    copies = [line for line in dockerfile.splitlines() if line.startswith("COPY") and package in line]
    assert copies, f"the trainer stage copies {package}/ in"
    assert all(dockerfile.index(line) > trainer for line in copies)
