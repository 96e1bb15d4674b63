"""ONNX Runtime sessions: the networks committed in ``app/pipeline/models``, and model files.

Unlike a ``cv2.dnn.Net``, an ``InferenceSession`` may be ``run()`` by several threads at
once, so each model is loaded once per process and shared by the inference threads; no
pool is needed.

Threads: a network runs on ``intra_op_threads`` threads (the caller's included; by default
one per core) when no other network call is in progress in the process, and on half as many
(at least one) when another is: a lone photo gets every core, the quickest answer, while two
photos in flight share the cores instead of each asking for all of them and fighting over
them, which cost throughput on mixed photos (docs/benchmarks.md, "Threads per call by load").
``Session`` holds one ONNX Runtime session of each size. Spinning is off, so a thread waiting
for work does not take the core the other photo needs.

Memory: every session in the process takes its working memory from one arena, registered
with ONNX Runtime's environment, instead of an arena of its own. Each arena grows to the
largest input its session ever saw and keeps it, so per-session arenas held the peak of every
network (and of both sizes of each) at once; the shared one holds what the calls in progress
need together (docs/benchmarks.md, "Threads per call by load").
"""

from __future__ import annotations

import functools
import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

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


class Session:
    """One network shared by every thread: all its threads when alone, half of them beside another call.

    The choice is made per ``run()`` from the calls of every ``Session`` in the process, so a
    photo's detector and embedding calls count alike. Both sessions load the same file and
    compute with the same kernels; only how the work is split between threads differs.
    """

    _running = 0
    _lock = threading.Lock()

    def __init__(self, path: Path, intra_op_threads: int) -> None:
        self.threads = intra_op_threads
        self.shared_threads = max(1, intra_op_threads // 2)
        self.wide = session_from_file(path, intra_op_threads)
        self.narrow = self.wide if intra_op_threads == 1 else session_from_file(path, self.shared_threads)
        #: Calls so far by the number of threads they ran on.
        self.runs: Counter[int] = Counter()

    def get_inputs(self) -> list[Any]:
        return self.wide.get_inputs()

    def get_outputs(self) -> list[Any]:
        return self.wide.get_outputs()

    def run(self, output_names: list[str] | None, feed: dict[str, Any]) -> list[Any]:
        """``InferenceSession.run`` on every thread if no other call is in progress, else on half."""
        with Session._lock:
            alone = Session._running == 0
            Session._running += 1
            self.runs[self.threads if alone else self.shared_threads] += 1
        session = self.wide if alone else self.narrow
        try:
            return session.run(output_names, feed)
        finally:
            with Session._lock:
                Session._running -= 1


def load_session(model: str, intra_op_threads: int) -> Session:
    """The committed ONNX ``model`` on the CPU, up to ``intra_op_threads`` threads per ``run()``.

    Raises ``NumericsMismatch`` if it fails its self-check on this CPU (``app.pipeline.numerics``).
    """
    path = model_file(model)
    session = Session(path, intra_op_threads)
    verify(path, session.wide)
    return session


def session_from_file(path: Path, intra_op_threads: int) -> ort.InferenceSession:
    """The ONNX model at ``path`` on the CPU, ``intra_op_threads`` threads per ``run()``, shared arena."""
    _register_shared_arena()
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = 1  # the graphs are chains: nothing runs in parallel between ops
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.use_env_allocators", "1")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


_arena_lock = threading.Lock()


def _register_shared_arena() -> None:
    """One CPU arena for every session of the process (ONNX Runtime's defaults for its growth).

    Under a lock, registered once: training loads its networks from several threads at once.
    """
    with _arena_lock:
        _register_arena_once()


@functools.cache
def _register_arena_once() -> None:
    memory = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
    ort.create_and_register_allocator(memory, ort.OrtArenaCfg(0, -1, -1, -1))
