"""The self-check each committed network runs when it loads: the same numbers on every CPU.

ONNX Runtime picks its kernels by CPU, and they need not agree: its uint8 x int8 kernels on
x86 CPUs without VNNI add pairs of products in 16 bits that saturate, so a network quantized
for a VNNI CPU computes other numbers there. ``make onnx`` therefore stores beside each
network ``<network>.reference.npz``: a few generated inputs and the outputs the network gives
for them computed in float (for an int8 network, the numbers its quantization intends).

Loading a network runs those inputs and compares (``verify``): an embedding must keep its
direction (cosine), any other output its values (largest error, relative to the largest
reference value). A network that fails is refused with ``NumericsMismatch``, which names the
network, the CPU and the figure, so the service reports not ready instead of answering with
numbers that are off.
"""

from __future__ import annotations

import functools
import platform
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

import numpy as np
import onnxruntime as ort

from app.pipeline.weights import WeightsMissing

Metric = Literal["cosine", "max_error"]
#: The flags that decide which int8 kernels ONNX Runtime runs on x86.
INT8_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
REFERENCE_SUFFIX = ".reference.npz"


class NumericsMismatch(RuntimeError):
    """A network computes numbers on this CPU that its float reference does not give."""


@dataclass(frozen=True)
class Reference:
    """Inputs by input name, the float outputs they give by output name, and how close is close enough.

    Each array's first axis is the case: ``inputs[name][i]`` is what one ``run()`` gets (its own
    batch axis included, since some networks take a batch of one), ``outputs[name][i]`` what it
    gives. ``metric`` "cosine": every output row (a case's batch item), flattened, must have a
    cosine of at least ``tolerance`` with its reference. "max_error": every output's largest
    absolute error must be at most ``tolerance`` times the reference's largest absolute value.
    """

    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]
    metric: Metric
    tolerance: float

    def save(self, path: Path) -> None:
        arrays = {"metric": np.array(self.metric), "tolerance": np.array(self.tolerance)}
        arrays |= {f"input/{k}": v for k, v in self.inputs.items()}
        arrays |= {f"output/{k}": v for k, v in self.outputs.items()}
        np.savez_compressed(path, allow_pickle=False, **arrays)

    @classmethod
    def load(cls, path: Path) -> Reference:
        with np.load(path, allow_pickle=False) as saved:
            metric = str(saved["metric"])
            if metric not in ("cosine", "max_error"):
                raise ValueError(f"{path}: unknown metric {metric!r}")
            return cls(
                inputs={k.removeprefix("input/"): saved[k] for k in saved.files if k.startswith("input/")},
                outputs={k.removeprefix("output/"): saved[k] for k in saved.files if k.startswith("output/")},
                metric=cast(Metric, metric),
                tolerance=float(saved["tolerance"]),
            )

    def worst(self, outputs: dict[str, np.ndarray]) -> float:
        """The worst figure of ``metric`` over ``outputs``: a cosine (higher is better) or an error."""
        figures = [agreement(self.metric, outputs[name], ref) for name, ref in self.outputs.items()]
        return min(figures) if self.metric == "cosine" else max(figures)

    def holds(self, figure: float) -> bool:
        return figure >= self.tolerance if self.metric == "cosine" else figure <= self.tolerance


def run_cases(
    session: ort.InferenceSession, inputs: dict[str, np.ndarray], output_names: list[str]
) -> dict[str, np.ndarray]:
    """One ``run()`` per case (the first axis of ``inputs``); each output's results stacked the same way."""
    cases = len(next(iter(inputs.values())))
    runs = [session.run(output_names, {k: v[i] for k, v in inputs.items()}) for i in range(cases)]
    return {name: np.stack([run[j] for run in runs]) for j, name in enumerate(output_names)}


def agreement(metric: Metric, out: np.ndarray, ref: np.ndarray) -> float:
    """The worst cosine of ``out``'s rows with ``ref``'s (batch items: the first axis, or the first
    two when there are cases), or the largest error relative to ``ref``'s largest value."""
    if out.shape != ref.shape:
        return 0.0 if metric == "cosine" else float("inf")
    out, ref = out.astype(np.float64), ref.astype(np.float64)
    if metric == "cosine":
        items = out.shape[0] * out.shape[1] if out.ndim > 2 else out.shape[0]
        rows, refs = out.reshape(items, -1), ref.reshape(items, -1)
        norms = np.linalg.norm(rows, axis=1) * np.linalg.norm(refs, axis=1)
        return float(np.min((rows * refs).sum(axis=1) / np.maximum(norms, 1e-30)))
    return float(np.abs(out - ref).max() / max(float(np.abs(ref).max()), 1e-30))


def reference_session(model: Path) -> ort.InferenceSession:
    """``model`` as its reference computes it: every op on its own, in float (no fused or int8 kernels).

    With graph optimisations off, an int8 network's QuantizeLinear/DequantizeLinear pairs run as
    written around float operators: the numbers its quantization intends.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def reference_path(model: Path) -> Path:
    """Where ``make onnx`` put ``model``'s reference: ``facenet.onnx`` -> ``facenet.reference.npz``."""
    return model.with_name(model.stem + REFERENCE_SUFFIX)


def verify(model: Path, session: ort.InferenceSession) -> None:
    """Run ``model``'s reference inputs through ``session``; ``NumericsMismatch`` if the outputs are off.

    A network that passed once in this process is not run again (the answer depends only on
    the file and the CPU).
    """
    if model in _verified:
        return
    path = reference_path(model)
    if not path.is_file():
        raise WeightsMissing(f"{path} is missing; it is part of the repository (rebuild it with: make onnx)")
    reference = Reference.load(path)
    figure = reference.worst(run_cases(session, reference.inputs, list(reference.outputs)))
    if not reference.holds(figure):
        relation = "below" if reference.metric == "cosine" else "above"
        raise NumericsMismatch(
            f"{model.name} computes wrong numbers on this CPU ({cpu_summary()}): {reference.metric} "
            f"{figure:.6g} against its float reference, {relation} the {reference.tolerance:g} it must keep; "
            "it is not used"
        )
    with _lock:
        _verified.add(model)


_verified: set[Path] = set()
_lock = threading.Lock()


@functools.cache
def cpu_summary() -> str:
    """The CPU's model name and the flags that decide its int8 kernels, e.g. ``AMD EPYC [avx2]``."""
    name, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            name = value.strip()
        elif key.strip() == "flags":
            flags = set(value.split())
            break
    return f"{name} [{' '.join(f for f in INT8_FLAGS if f in flags) or 'no avx2'}]"
