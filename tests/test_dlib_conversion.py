"""scripts/dlib_resnet.py builds the network face-api's source describes, from TF.js-stored weights.

The package itself is installed only by ``make onnx`` (which checks the real conversion against
its TF.js network on real faces), so here the converter gets drawn weights in the package's
layout (uint8 with scale and min, some tensors float32) and its ONNX graph is compared with
the same layers written in TensorFlow after face-api's ``src/faceRecognitionNet``: 'same'
convolutions at stride 1 and 'valid' at stride 2, the per-channel scale layer, and residual
blocks whose stride-2 shortcut is the zero-padded average pool.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from app.config import PROJECT_ROOT

tf = pytest.importorskip("tensorflow")


def _load_converter():
    path = PROJECT_ROOT / "scripts" / "dlib_resnet.py"
    spec = importlib.util.spec_from_file_location("dlib_resnet", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["dlib_resnet"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


dlib_resnet = _load_converter()

#: Each block's input and output channels, in the package's order.
CHANNELS = {
    "conv32_1": (32, 32),
    "conv32_2": (32, 32),
    "conv32_3": (32, 32),
    "conv64_down": (32, 64),
    "conv64_1": (64, 64),
    "conv64_2": (64, 64),
    "conv64_3": (64, 64),
    "conv128_down": (64, 128),
    "conv128_1": (128, 128),
    "conv128_2": (128, 128),
    "conv256_down": (128, 256),
    "conv256_1": (256, 256),
    "conv256_2": (256, 256),
    "conv256_down_out": (256, 256),
}


def _shapes() -> dict[str, list[int]]:
    """Every tensor of face_recognition_model by TF.js name, with its shape."""
    shapes: dict[str, list[int]] = {}

    def layer(prefix: str, size: int, cin: int, cout: int) -> None:
        shapes[f"{prefix}/conv/filters"] = [size, size, cin, cout]
        for name in ("conv/bias", "scale/weights", "scale/biases"):
            shapes[f"{prefix}/{name}"] = [cout]

    layer("conv32_down", 7, 3, 32)
    for block, (cin, cout) in CHANNELS.items():
        layer(f"{block}/conv1", 3, cin, cout)
        layer(f"{block}/conv2", 3, cout, cout)
    shapes["fc"] = [256, 128]
    return shapes


def _drawn_floats(name: str, shape: list[int], rng: np.random.Generator) -> np.ndarray:
    if name.endswith("filters"):
        return rng.normal(0, np.sqrt(2 / np.prod(shape[:3])), shape)
    if name.endswith("scale/weights"):
        return rng.uniform(0.5, 1.5, shape)
    if name == "fc":
        return rng.normal(0, 1 / 16, shape)
    return rng.normal(0, 0.05, shape)


def _write_package(model_dir: Path, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A manifest and shard in the package's format; the floats TF.js would read from them."""
    entries, chunks, floats = [], [], {}
    for name, shape in _shapes().items():
        values = _drawn_floats(name, shape, rng).astype(np.float32)
        entry: dict = {"name": name, "shape": shape, "dtype": "float32"}
        if name.startswith("conv64") and name.endswith("filters"):  # stored as float32, as in the package
            chunks.append(values.tobytes())
            floats[name] = values
        else:
            low, scale = float(values.min()), float(np.ptp(values)) / 255
            stored = np.round((values - low) / scale).astype(np.uint8)
            entry["quantization"] = {"dtype": "uint8", "scale": scale, "min": low}
            chunks.append(stored.tobytes())
            floats[name] = stored.astype(np.float32) * np.float32(scale) + np.float32(low)
        entries.append(entry)
    model_dir.mkdir(parents=True)
    (model_dir / "face_recognition_model.bin").write_bytes(b"".join(chunks))
    manifest = [{"paths": ["face_recognition_model.bin"], "weights": entries}]
    (model_dir / dlib_resnet.MANIFEST).write_text(json.dumps(manifest))
    return floats


def _tensorflow_descriptor(pixels: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    """face-api's FaceRecognitionNet.forwardInput, op for op."""

    def conv(x, prefix: str, stride: int, relu: bool):
        padding = "SAME" if stride == 1 else "VALID"
        out = tf.nn.conv2d(x, w[f"{prefix}/conv/filters"], stride, padding) + w[f"{prefix}/conv/bias"]
        out = out * w[f"{prefix}/scale/weights"] + w[f"{prefix}/scale/biases"]
        return tf.nn.relu(out) if relu else out

    def residual(x, prefix: str, down: bool):
        out = conv(conv(x, f"{prefix}/conv1", 2 if down else 1, True), f"{prefix}/conv2", 1, False)
        if down:
            pooled = tf.nn.avg_pool2d(x, 2, 2, "VALID")
            if pooled.shape[1] != out.shape[1]:
                out = tf.pad(out, [[0, 0], [0, 1], [0, 1], [0, 0]])
            if pooled.shape[3] != out.shape[3]:
                pooled = tf.concat([pooled, tf.zeros_like(pooled)], 3)
            x = pooled
        return tf.nn.relu(out + x)

    x = (tf.constant(pixels) - np.array(dlib_resnet.MEAN_RGB, np.float32)) / 255
    x = tf.nn.max_pool2d(conv(x, "conv32_down", 2, True), 3, 2, "VALID")
    for block in CHANNELS:
        x = residual(x, block, down=block.endswith(("down", "down_out")))
    return (tf.reduce_mean(x, [1, 2]) @ w["fc"]).numpy()


def test_the_onnx_graph_computes_face_apis_layers(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    floats = _write_package(tmp_path / "model", rng)
    model = dlib_resnet.build_model(dlib_resnet.read_weights(tmp_path / "model"), 17)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    pixels = rng.uniform(0, 255, (2, 150, 150, 3)).astype(np.float32)
    (ours,) = session.run(["embeddings"], {"input": pixels})
    theirs = _tensorflow_descriptor(pixels, floats)
    assert ours.shape == (2, dlib_resnet.DIM)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-5)
    cosines = (ours * theirs).sum(1) / np.linalg.norm(theirs, axis=1)
    assert cosines.min() >= 0.99999, cosines


def test_a_tensor_the_layers_do_not_use_is_an_error(tmp_path: Path) -> None:
    weights = dlib_resnet.read_weights(_package_with_extra_tensor(tmp_path))
    with pytest.raises(dlib_resnet.ConversionError, match="do not use: \\['extra'\\]"):
        dlib_resnet.build_model(weights, 17)


def _package_with_extra_tensor(tmp_path: Path) -> Path:
    model_dir = tmp_path / "model"
    _write_package(model_dir, np.random.default_rng(0))
    manifest = json.loads((model_dir / dlib_resnet.MANIFEST).read_text())
    manifest[0]["weights"].append({"name": "extra", "shape": [1], "dtype": "float32"})
    (model_dir / dlib_resnet.MANIFEST).write_text(json.dumps(manifest))
    with (model_dir / "face_recognition_model.bin").open("ab") as shard:
        shard.write(np.zeros(1, np.float32).tobytes())
    return model_dir


def test_a_missing_package_says_how_to_install_it(tmp_path: Path) -> None:
    with pytest.raises(dlib_resnet.ConversionError, match="npm ci --ignore-scripts"):
        dlib_resnet.read_weights(tmp_path)
