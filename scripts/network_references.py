"""The reference each committed network carries: generated inputs and their float outputs.

``make onnx`` (scripts/convert_onnx.py) calls ``write_reference`` for every network it writes;
the service runs the inputs again when it loads the network and refuses it if the outputs are
off (``app.pipeline.numerics``). The inputs are drawn, not photographed, so nothing of a real
person is committed: cartoon faces (a skin-toned oval with eyes, brows, nose and mouth, in
varied sizes, places, tones and light) on smooth random backgrounds. They give the networks
activations of a face's range, which is where an int8 kernel that saturates goes wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from app.pipeline.numerics import Metric, Reference, reference_path, reference_session, run_cases

#: Faces drawn per network, and the seed they are drawn from.
COUNT = 3
SEED = 20261207


def _smooth_noise(rng: np.random.Generator, size: int, cells: int = 6) -> np.ndarray:
    """A size x size x 3 image: random colours at ``cells`` x ``cells`` points, blended linearly."""
    grid = rng.uniform(0, 255, (3, cells, cells))
    # Row i of ``blend`` holds the linear weights of the grid points for pixel i.
    at = np.linspace(0, cells - 1, size)
    blend = np.stack([np.interp(at, np.arange(cells), np.eye(cells)[k]) for k in range(cells)], axis=1)
    return np.einsum("ik,ckl,jl->ijc", blend, grid, blend)


def cartoon_face(rng: np.random.Generator, size: int) -> np.ndarray:
    """One ``size`` x ``size`` RGB uint8 image: a drawn face on a smooth random background."""
    image = _smooth_noise(rng, size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    scale = size * rng.uniform(0.28, 0.4)
    cx, cy = size / 2 + rng.uniform(-0.08, 0.08) * size, size / 2 + rng.uniform(-0.05, 0.08) * size

    def oval(x: float, y: float, a: float, b: float) -> np.ndarray:
        return ((xx - cx - x * scale) / (a * scale)) ** 2 + ((yy - cy - y * scale) / (b * scale)) ** 2 <= 1

    skin = np.array([rng.uniform(150, 240), rng.uniform(100, 190), rng.uniform(80, 160)])
    light = 1 + 0.35 * (xx - cx) / size * rng.choice([-1, 1])  # light from one side
    image[oval(0, 0, 0.78, 1.0)] = 0
    image += oval(0, 0, 0.78, 1.0)[..., None] * skin * light[..., None]
    features = [
        ((-0.3, -0.2, 0.16, 0.07), 60),  # eyes
        ((0.3, -0.2, 0.16, 0.07), 60),
        ((-0.3, -0.36, 0.2, 0.04), 40),  # brows
        ((0.3, -0.36, 0.2, 0.04), 40),
        ((0, 0.12, 0.07, 0.15), 0.8),  # nose: a shade of the skin
        ((0, 0.45, 0.26, 0.07), 90),  # mouth
    ]
    for (x, y, a, b), tone in features:
        mask = oval(x, y, a, b)
        image[mask] = image[mask] * tone if tone < 1 else tone
    return np.clip(image, 0, 255).astype(np.uint8)


def cartoon_faces(size: int, count: int = COUNT, seed: int = SEED) -> np.ndarray:
    """``count`` drawn faces of ``size`` px, N x size x size x 3 uint8."""
    rng = np.random.default_rng(seed)
    return np.stack([cartoon_face(rng, size) for _ in range(count)])


def write_reference(
    model: Path,
    input_name: str,
    tensor: Callable[[np.ndarray], np.ndarray],
    size: int,
    metric: Metric,
    tolerance: float,
) -> Path:
    """Draw faces of ``size`` px, turn them into ``model``'s input with ``tensor``, and save them with the
    outputs ``model`` gives for them in float (``reference_session``), beside the model."""
    session = reference_session(model)
    faces = tensor(cartoon_faces(size)).astype(np.float32)
    inputs = {input_name: faces[:, None]}  # one face a run: some networks take a batch of one
    outputs = run_cases(session, inputs, [output.name for output in session.get_outputs()])
    path = reference_path(model)
    Reference(inputs, outputs, metric, tolerance).save(path)
    return path
