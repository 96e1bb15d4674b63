"""Shared pipeline objects under concurrent calls: OpenCV cascades per thread, ONNX sessions shared.

One ``CascadeClassifier`` called from two threads at once can crash the process,
so the hammering runs in a child process: a crash fails this test, not the suite.
"""

from __future__ import annotations

import textwrap
import threading

from app.pipeline.detect.haar import HaarDetector
from tests.fresh_python import run_python

HAMMER = textwrap.dedent(
    """
    import sys
    from concurrent.futures import ThreadPoolExecutor
    from app.pipeline.decode import decode_image
    from app.pipeline.detect import create_detector

    import numpy as np
    from app.pipeline.features import create_extractor

    rgb = decode_image(open(sys.argv[2], "rb").read())
    detector = create_detector(sys.argv[1])
    embedder = create_extractor("facenet")

    def run(_):
        faces = detector.detect(rgb)
        return faces, embedder.extract([embedder.crop(rgb, f) for f in faces])

    expected_faces, expected_rows = run(0)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(run, range(48)))
    assert all(faces == expected_faces for faces, _ in results), "concurrent detections differ"
    assert all(np.allclose(rows, expected_rows, atol=1e-5) for _, rows in results), "embeddings differ"
    print("ok", len(expected_faces))
    """
)


def test_detectors_and_embedder_survive_many_threads(one_face) -> None:
    for name in ("haar", "blazeface", "centerface"):
        run = run_python(HAMMER, name, str(one_face.path), timeout=300)
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == "ok 1"


def test_each_thread_has_its_own_haar_cascades() -> None:
    detector = HaarDetector()
    seen: dict[str, list[int]] = {}
    barrier = threading.Barrier(4)

    def run(name: str) -> None:
        barrier.wait()  # all four threads alive at once, so no thread's cascades are reused
        seen[name] = [id(detector._cascades()) for _ in range(3)]

    threads = [threading.Thread(target=run, args=(f"t{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    firsts = [ids[0] for ids in seen.values()]
    assert all(len(set(ids)) == 1 for ids in seen.values()), "a thread keeps its own set"
    assert len(set(firsts)) == 4, "no two threads share a set"
