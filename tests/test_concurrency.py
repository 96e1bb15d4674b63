"""Shared OpenCV objects under concurrent calls: the pool hands each thread its own.

One ``CascadeClassifier`` called from two threads at once can crash the process,
so the hammering runs in a child process: a crash fails this test, not the suite.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

from app.config import PROJECT_ROOT
from app.pipeline.pool import ResourcePool

HAMMER = textwrap.dedent(
    """
    import sys
    from concurrent.futures import ThreadPoolExecutor
    from app.pipeline.decode import decode_image
    from app.pipeline.detect import create_detector

    import numpy as np
    from app.pipeline.features import create_extractor

    rgb = decode_image(open(sys.argv[2], "rb").read())
    detector = create_detector(sys.argv[1], pool_size=4)
    embedder = create_extractor("facenet", pool_size=4)

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
    for name in ("haar", "blazeface"):
        run = subprocess.run(
            [sys.executable, "-c", HAMMER, name, str(one_face.path)],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == "ok 1"


def test_pool_never_lends_one_instance_twice() -> None:
    in_use: set[int] = set()
    clashes = []
    lock = threading.Lock()
    pool = ResourcePool(object, size=3)

    def borrow() -> None:
        for _ in range(50):
            with pool.borrow() as item:
                with lock:
                    if id(item) in in_use:
                        clashes.append(item)
                    in_use.add(id(item))
                time.sleep(0.0005)
                with lock:
                    in_use.discard(id(item))

    threads = [threading.Thread(target=borrow) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert clashes == []
    assert pool.created == 3
