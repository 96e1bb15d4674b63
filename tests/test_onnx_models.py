"""The committed ONNX networks are the ones ``make onnx`` recorded, and they load on ONNX Runtime."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

from app.pipeline.numerics import REFERENCE_SUFFIX
from app.pipeline.onnx_session import default_intra_op_threads, load_session
from app.pipeline.weights import MODELS, WeightsMissing, model_file


def _sums() -> dict[str, str]:
    lines = (MODELS / "SHA256SUMS").read_text().splitlines()
    return {name: digest for digest, name in (line.split() for line in lines)}


def test_every_committed_model_and_reference_matches_its_recorded_sha256() -> None:
    sums = _sums()
    committed = [*MODELS.glob("*.onnx"), *MODELS.glob(f"*{REFERENCE_SUFFIX}")]
    assert sorted(sums) == sorted(p.name for p in committed)
    assert len(committed) == 2 * len(list(MODELS.glob("*.onnx")))  # a reference beside each network
    for name, digest in sums.items():
        assert hashlib.sha256(model_file(name).read_bytes()).hexdigest() == digest, name


def test_facenet_runs_any_batch_size_with_unit_length_rows() -> None:
    session = load_session("facenet.onnx", intra_op_threads=1)
    batch = np.random.default_rng(0).uniform(-1, 1, (3, 160, 160, 3)).astype(np.float32)
    (rows,) = session.run(None, {"input:0": batch})
    assert rows.shape == (3, 512)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1, atol=1e-5)


def test_a_missing_model_is_a_clear_error() -> None:
    with pytest.raises(WeightsMissing, match="make onnx"):
        model_file("no_such_model.onnx")


def test_threads_per_call_follow_omp_num_threads_as_ray_sets_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert default_intra_op_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "not a number")
    assert default_intra_op_threads() == (os.cpu_count() or 1)
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert default_intra_op_threads() == (os.cpu_count() or 1)
