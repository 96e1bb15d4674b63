"""dlib's face descriptor (a 29-layer ResNet, 128-d) on ONNX Runtime.

The weights are dlib's (public domain), as the npm package ``@vladmandic/face-api`` ships
them; ``make onnx`` rebuilds the network in ONNX (scripts/dlib_resnet.py), checks it against
the package's own TF.js network on real faces, and commits it as ``models/dlib_resnet.onnx``:
float32, L2-normalised output, the input normalisation inside the graph (it takes the
crop's pixels). The network was trained on dlib's face chips, so each face is warped onto
dlib's template (its mean face, 150 px, padding 0.25): on another template its embeddings
fall apart (docs/benchmarks.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.pipeline.align import dlib_template, warp_to_template
from app.pipeline.detect import Detection
from app.pipeline.features import FeatureExtractor
from app.pipeline.onnx_session import default_intra_op_threads, load_session

MODEL = "dlib_resnet.onnx"
INPUT_SIZE = 150
#: dlib's chip: the mean face with a quarter of its square added on every side.
PADDING = 0.25
TEMPLATE = dlib_template(INPUT_SIZE, PADDING)
DIM = 128


class DlibResNetEmbedder(FeatureExtractor):
    name = "dlib"
    embedding = True
    template = TEMPLATE

    def __init__(self, margin: float = 0.2, intra_op_threads: int | None = None) -> None:
        """``margin``: the box crop's, for a face without usable landmarks. One session for every thread."""
        self.margin = margin
        threads = intra_op_threads or default_intra_op_threads()
        self._session = load_session(MODEL, threads)  # loaded now, so a broken model fails at start-up

    @property
    def params(self) -> dict[str, Any]:
        return {"margin": self.margin}

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return (DIM,)

    def crop(self, rgb: np.ndarray, face: Detection) -> np.ndarray:
        return warp_to_template(rgb, face, TEMPLATE, self.margin)

    def extract(self, crops: list[np.ndarray]) -> np.ndarray:
        if not crops:
            return np.empty((0, DIM), np.float32)
        pixels = np.stack(crops).astype(np.float32)
        return self._session.run(["embeddings"], {"input": pixels})[0]
