"""scripts/calibration_faces.py: FaceNet's int8 calibration sees training photos only, never held-out ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.artifact.manifest import load_manifest
from tests.training.conftest import copy_photos

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "calibration_faces.py"


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], check=False, capture_output=True, text=True, timeout=600
    )


def test_the_crops_are_of_the_photos_train_fits_on(tmp_path, shared_photos, run_cli) -> None:
    data = copy_photos(tmp_path / "data", {p: paths[:6] for p, paths in shared_photos.items()})
    assert run_cli(data)[0] == 0
    manifest = load_manifest(tmp_path / "artifacts" / "svm" / "v1")
    held_out = set(manifest.dataset["test_files"])
    assert held_out

    out = tmp_path / "calibration.npz"
    result = run_script("--data", str(data), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "'crop': 'arcface'" in result.stdout  # the ranges are calibrated on the crop new models embed
    with np.load(out) as saved:
        keys, crops, dlib_crops = saved["keys"].tolist(), saved["crops"], saved["dlib_crops"]
    photos = {key.split("#")[0] for key in keys}
    assert not photos & held_out
    # Every photo train fits on has a face, so each gives at least one crop.
    assert len(photos) == manifest.dataset["train_photos"]
    assert crops.shape == (len(keys), 160, 160, 3)
    assert crops.dtype == np.uint8
    assert dlib_crops.shape == (len(keys), 150, 150, 3) and dlib_crops.dtype == np.uint8


def test_a_missing_folder_is_a_one_line_error(tmp_path) -> None:
    result = run_script("--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.npz"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].endswith(f"no photo folder at {tmp_path / 'nothing'}")
    assert "Traceback" not in result.stderr
