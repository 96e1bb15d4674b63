"""ONNX Runtime sessions for the networks committed in ``app/pipeline/models``.

Unlike a ``cv2.dnn.Net``, an ``InferenceSession`` may be ``run()`` by several threads at
once, so each model is loaded once per process and shared by the inference threads; no
pool is needed.

Threads: each ``run()`` gets ``intra_op_threads`` threads (the caller's included). With
``INFERENCE_THREADS`` photos in flight, each call gets the cores divided by the photos in
flight, so the cores are all busy but not oversubscribed; spinning is off, as a waiting
thread that spins takes a core from the other photo. On the busy 2-core machine the
settings measured (bench/embedding.py --intra-op, docs/benchmarks.md) could not be told
apart, so this default follows the reasoning; measure again on a quiet machine.
"""

from __future__ import annotations

import os

import onnxruntime as ort

from app.pipeline.weights import model_file


def default_intra_op_threads(concurrent_calls: int) -> int:
    """Threads per call when ``concurrent_calls`` calls share the machine's cores."""
    return max(1, (os.cpu_count() or 1) // max(1, concurrent_calls))


def load_session(model: str, intra_op_threads: int) -> ort.InferenceSession:
    """The committed ONNX ``model`` on the CPU, ``intra_op_threads`` threads per ``run()``."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1  # the graphs are chains: nothing runs in parallel between ops
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(model_file(model)), options, providers=["CPUExecutionProvider"])
