"""The package layering that docs/architecture.md draws, checked on the source.

``training`` builds on ``app`` (the pipeline, the artifact format, the answer rule), and
``enrolment`` on both, never the other way round: the serving image does not even contain
``training`` or ``enrolment``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of the file (lazy imports included)."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


APP_FILES = sorted((ROOT / "app").rglob("*.py"))


@pytest.mark.parametrize("path", APP_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_app_never_imports_training(path: Path) -> None:
    above = ("training", "enrolment")
    climbing = sorted(m for m in imported_modules(path) if m.split(".")[0] in above)
    assert climbing == [], f"{path.relative_to(ROOT)} imports {climbing}: serving must not need training"


def test_the_check_sees_imports() -> None:
    """The walker finds top-level and function-level imports alike (else the test above proves nothing)."""
    modules = imported_modules(ROOT / "training" / "train.py")
    assert {"app.labelled.folders", "training.cached_scores"} <= modules


@pytest.mark.parametrize("package", ["training", "enrolment"])
def test_serving_image_leaves_training_out(package: str) -> None:
    """Only the trainer stage, built on the api image, copies the training and enrolment packages in."""
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    trainer = dockerfile.index("FROM api AS trainer")
    copies = [line for line in dockerfile.splitlines() if line.startswith("COPY") and package in line]
    assert copies, f"the trainer stage copies {package}/ in"
    assert all(dockerfile.index(line) > trainer for line in copies)
