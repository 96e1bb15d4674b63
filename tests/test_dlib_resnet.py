"""The dlib ResNet embedding: its committed network, its crop and its embeddings of real faces."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from app.pipeline import weights
from app.pipeline.align import estimate_similarity
from app.pipeline.detect import create_detector
from app.pipeline.features import FEATURES, create_extractor
from app.pipeline.features.dlib_resnet import DIM, INPUT_SIZE, MODEL, TEMPLATE, DlibResNetEmbedder
from app.pipeline.numerics import Reference, cpu_summary, reference_path, reference_session
from app.pipeline.onnx_session import load_session
from tests.conftest import LabelledPhoto

#: The bar of issue 23 for an embedding on a real face, against its float reference.
EMBEDDING_COSINE = 0.999


@pytest.fixture(scope="module")
def dlib() -> DlibResNetEmbedder:
    extractor = create_extractor("dlib")
    assert isinstance(extractor, DlibResNetEmbedder)
    return extractor


@pytest.fixture(scope="module")
def faces(single_face_photos: list[LabelledPhoto], dlib: DlibResNetEmbedder) -> tuple[np.ndarray, np.ndarray]:
    """dlib's crop of the one face of each held-out single-face photo, and whose face it is."""
    detector = create_detector("blazeface")
    crops, labels = [], []
    for photo in single_face_photos:
        rgb = photo.rgb
        (face,) = detector.detect(rgb)
        assert estimate_similarity(face, TEMPLATE) is not None, f"{photo.path.name}: no landmark fit"
        crops.append(dlib.crop(rgb, face))
        labels.append(photo.label)
    return np.stack(crops), np.array(labels)


def test_dlib_is_a_registered_embedding(dlib: DlibResNetEmbedder) -> None:
    assert "dlib" in FEATURES.names and FEATURES.load("dlib") is DlibResNetEmbedder
    assert dlib.embedding and dlib.feature_shape == (DIM,)
    assert create_extractor("dlib", dlib.params).params == dlib.params  # the manifest rebuilds it


def test_the_crop_is_dlibs_chip_of_the_face(faces: tuple[np.ndarray, np.ndarray]) -> None:
    crops, _ = faces
    assert crops.shape[1:] == (INPUT_SIZE, INPUT_SIZE, 3) and crops.dtype == np.uint8
    assert TEMPLATE.size == INPUT_SIZE
    # dlib's mean face with padding 0.25: eyes 52 px apart, level, in the upper half.
    (lx, ly), (rx, ry) = TEMPLATE.points["left_eye"], TEMPLATE.points["right_eye"]
    assert rx - lx == pytest.approx(0.5320 / 1.5 * INPUT_SIZE, abs=0.01) and ly == ry < INPUT_SIZE / 2


def test_embeddings_are_unit_vectors_and_batch_safe(
    dlib: DlibResNetEmbedder, faces: tuple[np.ndarray, np.ndarray]
) -> None:
    crops = list(faces[0][:4])
    batched = dlib.extract(crops)
    one_by_one = np.vstack([dlib.extract([c]) for c in crops])
    assert batched.shape == (4, DIM) and batched.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    assert dlib.extract([]).shape == (0, DIM)


def test_each_persons_faces_lie_closer_to_each_other_than_to_anyone_elses(
    dlib: DlibResNetEmbedder, faces: tuple[np.ndarray, np.ndarray]
) -> None:
    crops, labels = faces
    unit = dlib.extract(list(crops))
    similarity = unit @ unit.T
    same = labels[:, None] == labels[None, :]
    np.fill_diagonal(similarity, np.nan)
    for person in np.unique(labels):
        mine = labels == person
        if mine.sum() < 2:
            continue
        within = np.nanmean(similarity[np.ix_(mine, mine)])
        between = np.nanmean(similarity[np.ix_(mine, ~mine)])
        # dlib's descriptors sit in a narrow cone (docs/benchmarks.md): any two faces are similar,
        # a person's own a little more so; the margin asked is half the smallest seen.
        assert within > between + 0.03, f"{person}: within {within:.3f}, others {between:.3f}"
    # Each face's nearest other face is of the same person, for nearly every face.
    nearest = np.nanargmax(similarity, axis=1)
    assert same[np.arange(len(labels)), nearest].mean() >= 0.95


def test_the_network_embeds_real_faces_as_its_float_reference_does(
    faces: tuple[np.ndarray, np.ndarray],
) -> None:
    served = load_session(MODEL, intra_op_threads=2)
    reference = reference_session(weights.model_file(MODEL))
    batch = {"input": faces[0].astype(np.float32)}
    ours, theirs = served.run(None, batch)[0], reference.run(None, batch)[0]
    cosines = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    assert cosines.min() >= EMBEDDING_COSINE, f"on {cpu_summary()}: cosine min {cosines.min():.6f}"


def test_the_network_is_committed_with_its_hash_and_an_embedding_reference() -> None:
    sums = dict(reversed(line.split()) for line in (weights.MODELS / "SHA256SUMS").read_text().splitlines())
    network = weights.model_file(MODEL)
    for path in (network, reference_path(network)):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sums[path.name], path.name
    reference = Reference.load(reference_path(network))
    assert reference.metric == "cosine" and reference.tolerance == EMBEDDING_COSINE
    (inputs,) = reference.inputs.values()
    assert inputs.shape[2:] == (INPUT_SIZE, INPUT_SIZE, 3)  # cases x batch of one x the crop's pixels
    assert inputs.min() >= 0 and inputs.max() > 1  # pixels, not normalised: the graph normalises
