"""The batch CLI on a real folder: held-out photos in class folders, plus the files real folders hold.

The folder mixes labelled photos, a photo outside any class folder, a photo without a
face, a corrupt JPEG and a stray text file. The JSONL run is the real command in a
subprocess; the CSV run calls the same entry point in-process. Rows are checked
against the service's own answer for the same photo, and the printed accuracy
against the rows, so a CLI that drifted from the service or miscounted would fail.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app.batch import command, local
from app.config import Settings
from tests.conftest import ARTIFACTS, LabelledPhoto
from tests.fresh_python import run_module, run_python

pytestmark = pytest.mark.slow

ACCURACY_LINE = re.compile(r"end-to-end accuracy on (\d+) photos in class folders: [\d.]+% \((\d+)/(\d+)\)")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, held_out: list[LabelledPhoto]) -> Path:
    """A labelled folder of copies (the shared photos stay where they are), plus the usual mess."""
    root = tmp_path_factory.mktemp("batch") / "photos"
    people = sorted({p.label for p in held_out})[:2]
    for person in people:
        (root / person).mkdir(parents=True)
        for photo in [p for p in held_out if p.label == person][:2]:
            shutil.copy(photo.path, root / person / photo.path.name)
    (root / "unsorted").mkdir()
    outsider = next(p for p in held_out if p.label not in people)
    shutil.copy(outsider.path, root / "unsorted" / "someone.JPG")  # upper-case suffix still counts
    Image.fromarray(np.full((240, 320, 3), 128, np.uint8)).save(root / "unsorted" / "grey.png")
    good = held_out[0].path.read_bytes()
    (root / people[0] / "broken.jpg").write_bytes(good[: len(good) // 3])  # a truncated download
    (root / "notes.txt").write_text("not a photo\n")
    return root


def summary_counts(stdout: str) -> tuple[int, int]:
    """(photos scored, photos correct) from the printed accuracy line."""
    match = ACCURACY_LINE.search(stdout)
    assert match, stdout
    assert match[1] == match[3]
    return int(match[3]), int(match[2])


def check_rows(rows: list[dict], folder: Path, client: TestClient) -> None:
    """Every image has rows, bad files are rows with errors, and faces match the HTTP service."""
    by_path: dict[str, list[dict]] = {}
    for row in rows:
        by_path.setdefault(row["path"], []).append(row)
    images = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.suffix != ".txt"}
    images -= {p.relative_to(folder).as_posix() for p in folder.iterdir() if p.is_dir()}
    assert set(by_path) == images  # notes.txt has no row; every image has at least one
    (broken,) = [p for p in by_path if p.endswith("broken.jpg")]
    assert [r["status"] for r in by_path[broken]] == ["error"]
    assert "Undecodable" in by_path[broken][0]["error"]
    assert [r["status"] for r in by_path["unsorted/grey.png"]] == ["no_face"]
    for path, got in by_path.items():
        if got[0]["status"] != "face":
            continue
        with (folder / path).open("rb") as handle:
            served = client.post("/v1/classify", files={"file": (path, handle)}).json()["faces"]
        assert [r["face"] for r in got] == list(range(len(served)))
        assert [r["label"] for r in got] == [f["label"] for f in served]
        assert [r["box"] for r in got] == [f["box"] for f in served]
        for row, face in zip(got, served, strict=True):
            assert row["confidence"] == pytest.approx(face["confidence"], abs=1e-5)
            assert set(row["probabilities"]) == set(face["probabilities"])


def expected_counts(rows: list[dict]) -> tuple[int, int]:
    """(photos in class folders, photos whose largest face is labelled with the folder's class)."""
    photos: dict[str, list[dict]] = {}
    for row in rows:
        top = row["path"].split("/")[0]
        if top != "unsorted" and "/" in row["path"]:
            photos.setdefault(row["path"], []).append(row)
    correct = 0
    for path, got in photos.items():
        faces = [r for r in got if r["status"] == "face"]
        if faces:
            largest = max(faces, key=lambda r: r["box"]["width"] * r["box"]["height"])
            correct += largest["label"] == path.split("/")[0]
    return len(photos), correct


def test_cli_writes_jsonl_and_prints_the_accuracy(folder: Path, tmp_path: Path, client: TestClient) -> None:
    out = tmp_path / "results.jsonl"
    backend = client.get("/v1/models").json()["backend"]  # the batch CLI and the client serve one model
    env = {**os.environ, "ARTIFACTS_DIR": str(ARTIFACTS), "CLASSIFIER_BACKEND": backend}
    done = run_module("app", "classify", str(folder), "--out", str(out), timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    check_rows(rows, folder, client)
    assert "1 unreadable; skipped 1 non-image files" in done.stdout
    assert summary_counts(done.stdout) == expected_counts(rows)
    assert expected_counts(rows)[0] == 5  # 2 + 2 photos and the broken one, which counts as wrong


def test_csv_has_the_same_rows_with_flat_columns(folder: Path, tmp_path: Path, client: TestClient) -> None:
    out = tmp_path / "results.csv"
    backend = client.get("/v1/models").json()["backend"]
    settings = Settings(_env_file=None, artifacts_dir=ARTIFACTS, classifier_backend=backend)
    summary = local.classify_folder(folder, out, settings)
    with out.open(newline="") as handle:
        table = list(csv.DictReader(handle))
    classes = [c.removeprefix("p_") for c in table[0] if c.startswith("p_")]
    assert classes == [c["id"] for c in client.get("/v1/models").json()["classes"]]  # a column per class
    rows = []
    for line in table:  # back to the JSONL shape, so both formats are held to the same checks
        face = line["status"] == "face"
        rows.append(
            {
                "path": line["path"],
                "status": line["status"],
                "face": int(line["face"]) if face else None,
                "box": {k: int(line[f"box_{k}"]) for k in ("x", "y", "width", "height")} if face else None,
                "label": line["label"] or None,
                "confidence": float(line["confidence"]) if face else None,
                "probabilities": {c: float(line[f"p_{c}"]) for c in classes} if face else None,
                "error": line["error"] or None,
            }
        )
    check_rows(rows, folder, client)
    assert (summary.photos, summary.errors, summary.no_face, summary.skipped) == (7, 1, 1, 1)
    assert summary.metrics is not None
    n, correct = expected_counts(rows)
    assert summary.metrics["test_photos"] == n
    assert round(summary.metrics["accuracy"] * n) == correct


def test_refuses_an_unknown_output_format(folder: Path, tmp_path: Path) -> None:
    settings = Settings(_env_file=None, artifacts_dir=ARTIFACTS)
    assert command.main(folder, tmp_path / "results.xlsx", settings) == 2  # bad input, as for every command
    assert not (tmp_path / "results.xlsx").exists()


SHARE_SCRIPT = (
    "from app.batch.local import share_cores; from app.config import Settings; "
    "from app.pipeline.onnx_session import default_intra_op_threads; "
    "share_cores(Settings(_env_file=None, inference_threads=2)); print(default_intra_op_threads())"
)


@pytest.mark.parametrize(("preset", "expected"), [(None, max(1, (os.cpu_count() or 1) // 2)), ("3", 3)])
def test_the_local_engine_gives_each_photo_its_share_of_the_cores(preset, expected) -> None:
    """Two photos in flight: half the cores each for ONNX Runtime, unless OMP_NUM_THREADS says otherwise."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if preset is not None:
        env["OMP_NUM_THREADS"] = preset
    run = run_python(SHARE_SCRIPT, timeout=60, env=env)
    assert run.returncode == 0, run.stderr
    assert int(run.stdout) == expected
