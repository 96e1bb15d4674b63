"""The committed networks compute, on the CPU the tests run on, what their float reference computes.

ONNX Runtime chooses kernels by CPU (int8 ones above all), so these are checked here, on this
machine, on real inputs: faces of the shared photos for the embedder, the photos themselves for
the detectors. The self-check each network runs when it loads (``app.pipeline.numerics``) is
tested too: a network whose outputs are off is refused, and the service is then not ready.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from app.pipeline import weights
from app.pipeline.detect import create_detector
from app.pipeline.detect.blazeface import MODELS as BLAZEFACE_MODELS
from app.pipeline.detect.blazeface import _Model
from app.pipeline.detect.centerface import MODEL as CENTERFACE
from app.pipeline.detect.centerface import padded_input
from app.pipeline.features.facenet import MODEL as FACENET
from app.pipeline.features.facenet import FaceNetEmbedder, standardise
from app.pipeline.numerics import (
    NumericsMismatch,
    Reference,
    cpu_summary,
    reference_path,
    reference_session,
    verify,
)
from app.pipeline.onnx_session import load_session, session_from_file
from app.pipeline.weights import MODELS, WeightsMissing
from tests.conftest import make_client
from tests.test_api import assert_problem

#: The bar of issue 23 for an embedding on a real face, against its float reference.
EMBEDDING_COSINE = 0.999
#: A detector's largest error, relative to its largest output, on a real photo.
DETECTOR_MAX_ERROR = 1e-4


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def face_crops(held_out) -> np.ndarray:
    """FaceNet's crop of the largest face of each held-out photo."""
    detector, embedder = create_detector("blazeface"), FaceNetEmbedder()
    crops = []
    for photo in held_out:
        faces = detector.detect(photo.rgb)
        if faces:
            crops.append(embedder.crop(photo.rgb, max(faces, key=lambda f: f.box.area)))
    assert len(crops) >= 30
    return np.stack(crops)


def test_facenet_embeds_real_faces_as_its_float_reference_does(face_crops: np.ndarray) -> None:
    served = load_session(FACENET, intra_op_threads=2)
    reference = reference_session(weights.model_file(FACENET))
    batch = {"input:0": standardise(face_crops)}
    cosines = _cosines(served.run(None, batch)[0], reference.run(None, batch)[0])
    assert cosines.min() >= EMBEDDING_COSINE, (
        f"on {cpu_summary()}: cosine min {cosines.min():.4f}, median {np.median(cosines):.4f}"
    )


@pytest.mark.parametrize("name", sorted(BLAZEFACE_MODELS))
def test_blazeface_sees_real_photos_as_its_float_reference_does(name: str, held_out) -> None:
    model = _Model(BLAZEFACE_MODELS[name])
    reference = reference_session(weights.model_file(model.spec.file))
    for photo in held_out[::4]:
        tensor, *_ = model.input_tensor(photo.rgb)
        served = model.session.run(None, {model.input: tensor})
        expected = reference.run(None, {model.input: tensor})
        for out, ref in zip(served, expected, strict=True):
            error = np.abs(out - ref).max() / np.abs(ref).max()
            assert error <= DETECTOR_MAX_ERROR, f"{photo.path.name} on {cpu_summary()}: {error:.2e}"


def test_centerface_sees_real_photos_as_its_float_reference_does(held_out) -> None:
    served = load_session(CENTERFACE, intra_op_threads=2)
    reference = reference_session(weights.model_file(CENTERFACE))
    for photo in held_out[::4]:
        tensor = {"image": padded_input(photo.rgb)}
        for out, ref in zip(served.run(None, tensor), reference.run(None, tensor), strict=True):
            error = np.abs(out - ref).max() / np.abs(ref).max()
            assert error <= DETECTOR_MAX_ERROR, f"{photo.path.name} on {cpu_summary()}: {error:.2e}"


def test_every_committed_network_passes_its_self_check_here() -> None:
    networks = sorted(MODELS.glob("*.onnx"))
    assert networks
    for network in networks:
        assert reference_path(network).is_file(), network.name
        load_session(network.name, intra_op_threads=1)  # raises NumericsMismatch if off


def _tampered_copy(tmp_path: Path, name: str, change) -> Path:
    """``name`` and the other committed networks copied to ``tmp_path``, with ``name``'s reference changed."""
    for path in MODELS.iterdir():
        shutil.copy(path, tmp_path / path.name)
    reference = Reference.load(reference_path(MODELS / name))
    change(reference)
    reference.save(reference_path(tmp_path / name))
    return tmp_path / name


def _turn_first_output(reference: Reference) -> None:
    """Make every expected embedding point elsewhere: what an int8 kernel that saturates looks like."""
    name = next(iter(reference.outputs))
    reference.outputs[name] = np.roll(reference.outputs[name], 1, axis=-1)


def test_a_network_whose_numbers_are_off_is_refused_in_one_line(tmp_path: Path) -> None:
    network = _tampered_copy(tmp_path, FACENET, _turn_first_output)
    with pytest.raises(NumericsMismatch) as refused:
        verify(network, session_from_file(network, intra_op_threads=1))
    message = str(refused.value)
    assert "\n" not in message
    assert FACENET in message and cpu_summary() in message and "cosine" in message


def test_a_detector_whose_numbers_are_off_is_refused(tmp_path: Path) -> None:
    name = BLAZEFACE_MODELS["back"].file

    def nudge(reference: Reference) -> None:
        scores = next(k for k, v in reference.outputs.items() if v.shape[-1] == 1)
        reference.outputs[scores] = reference.outputs[scores] + 0.01 * np.abs(reference.outputs[scores]).max()

    network = _tampered_copy(tmp_path, name, nudge)
    with pytest.raises(NumericsMismatch, match="max_error"):
        verify(network, session_from_file(network, intra_op_threads=1))


def test_a_network_without_its_reference_is_refused(tmp_path: Path) -> None:
    network = tmp_path / FACENET
    shutil.copy(MODELS / FACENET, network)
    with pytest.raises(WeightsMissing, match="make onnx"):
        verify(network, session_from_file(network, intra_op_threads=1))


def test_the_service_is_not_ready_when_a_network_fails_its_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _tampered_copy(tmp_path, FACENET, _turn_first_output)
    monkeypatch.setattr(weights, "MODELS", tmp_path)
    with caplog.at_level(logging.ERROR, logger="app.model"):
        for client in make_client(wait=False):
            deadline = time.monotonic() + 60
            while "computes wrong numbers" not in client.get("/readyz").text:
                assert time.monotonic() < deadline, client.get("/readyz").text
                time.sleep(0.1)
            assert_problem(client.get("/readyz"), 503)
    failures = [r.getMessage() for r in caplog.records if "computes wrong numbers" in r.getMessage()]
    assert failures and all("\n" not in line for line in failures)
