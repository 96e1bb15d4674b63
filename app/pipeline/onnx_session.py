"""ONNX Runtime sessions: the networks committed in ``app/pipeline/models``, and model files.

Unlike a ``cv2.dnn.Net``, an ``InferenceSession`` may be ``run()`` by several threads at
once, so each model is loaded once per process and shared by the inference threads; no
pool is needed.

Threads: each ``run()`` gets ``intra_op_threads`` threads (the caller's included), by
default one per core whatever ``INFERENCE_THREADS`` is. On 2 cores with two photos in
flight (bench/embedding.py --concurrency 2, docs/benchmarks.md) two threads per call gave
more faces per second than one in each of the four pairs measured, and a single call's
time per face within the noise. Spinning is off, so a thread waiting for work does not take the
core the other photo needs.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnxruntime as ort

from app.pipeline.numerics import verify
from app.pipeline.weights import model_file


def default_intra_op_threads() -> int:
    """Threads per call: every core, or ``OMP_NUM_THREADS`` when it is set.

    Ray sets ``OMP_NUM_THREADS`` in each actor to the CPUs it gave that actor; ONNX Runtime
    (not built with OpenMP) ignores it, so without this two one-CPU actors would each run a
    pool as large as the machine (see the module's docstring for the single-process measurement).
    """
    limit = os.environ.get("OMP_NUM_THREADS", "")
    return int(limit) if limit.isdigit() and int(limit) > 0 else os.cpu_count() or 1


def load_session(model: str, intra_op_threads: int) -> ort.InferenceSession:
    """The committed ONNX ``model`` on the CPU, ``intra_op_threads`` threads per ``run()``.

    Raises ``NumericsMismatch`` if it fails its self-check on this CPU (``app.pipeline.numerics``).
    """
    path = model_file(model)
    session = session_from_file(path, intra_op_threads)
    verify(path, session)
    return session


def session_from_file(path: Path, intra_op_threads: int) -> ort.InferenceSession:
    """The ONNX model at ``path`` on the CPU, ``intra_op_threads`` threads per ``run()``."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1  # the graphs are chains: nothing runs in parallel between ops
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
