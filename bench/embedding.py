"""Embedding time per face, alone and under concurrency, and how far embeddings moved.

Run by hand, not in CI:

    .venv/bin/python bench/embedding.py --repeat 50                      # time per face
    .venv/bin/python bench/embedding.py --concurrency 2 --intra-op 1     # 2 threads, as INFERENCE_THREADS=2
    .venv/bin/python bench/embedding.py --dump /tmp/emb-before.npz       # every face of the shared photos
    .venv/bin/python bench/embedding.py --compare /tmp/emb-before.npz    # cosine per face against a dump
    .venv/bin/python bench/embedding.py --features facenet dlib          # two embeddings side by side

With several ``--features``, their calls alternate (one call of each per round), so a load that
comes and goes on a shared machine weighs on each alike.

Faces are found with the default detector (BlazeFace) on the shared photos and cut the
way each embedder cuts them, so the timing covers the network alone (blob included).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

from app.pipeline.decode import decode_image
from app.pipeline.detect import create_detector
from app.pipeline.features import FEATURES, FeatureExtractor, create_extractor
from app.pipeline.numerics import cpu_summary

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "hobbits"
PHOTOS = ("*.jpg", "*.jpeg", "*.png")


def face_crops(embedder: FeatureExtractor, data: Path, limit: int | None) -> dict[str, np.ndarray]:
    """Every detected face of every photo, keyed ``person/photo#index``."""
    detector = create_detector("blazeface")
    paths = sorted(p for pattern in PHOTOS for p in data.glob(f"*/{pattern}"))[:limit]
    crops = {}
    for path in paths:
        rgb = decode_image(path.read_bytes())
        for i, face in enumerate(detector.detect(rgb)):
            crops[f"{path.relative_to(data)}#{i}"] = embedder.crop(rgb, face)
    return crops


def time_per_face(
    embedders: dict[str, FeatureExtractor], crops: dict[str, list[np.ndarray]], batch: int, repeat: int
) -> dict[str, list[float]]:
    """Seconds per face of ``repeat`` calls with ``batch`` faces each, per embedder, calls alternating."""
    times: dict[str, list[float]] = {name: [] for name in embedders}
    for name, embedder in embedders.items():
        embedder.extract(crops[name][:batch])  # warm-up
    for r in range(repeat):
        for name, embedder in embedders.items():
            faces = crops[name]
            chunk = [faces[(r * batch + j) % len(faces)] for j in range(batch)]
            start = time.perf_counter()
            embedder.extract(chunk)
            times[name].append((time.perf_counter() - start) / batch)
    return times


def concurrent_rate(
    embedder: FeatureExtractor, crops: list[np.ndarray], threads: int, seconds: float
) -> float:
    """Faces per second with ``threads`` threads each embedding one face at a time."""
    embedder.extract(crops[:1])
    stop = time.perf_counter() + seconds
    counts = [0] * threads

    def work(k: int) -> None:
        i = k
        while time.perf_counter() < stop:
            embedder.extract([crops[i % len(crops)]])
            counts[k] += 1
            i += threads

    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(counts) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--photos", type=int, default=None, help="only the first N photos")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument(
        "--features", nargs="+", choices=FEATURES.names, default=["facenet"], help="the embeddings to time"
    )
    parser.add_argument("--concurrency", type=int, default=0, help="also run N threads for --seconds")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--intra-op", type=int, default=None, help="ONNX Runtime intra-op threads")
    parser.add_argument("--dump", type=Path, help="write every face's embedding here (.npz)")
    parser.add_argument("--compare", type=Path, help="cosine similarity per face against this dump")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        parser.error(f"no photo folder at {args.data}")
    if (args.dump or args.compare) and len(args.features) > 1:
        parser.error("--dump and --compare take one --features")

    extra = {} if args.intra_op is None else {"intra_op_threads": args.intra_op}
    embedders = {name: create_extractor(name, extra) for name in args.features}
    crops = {name: face_crops(embedder, args.data, args.photos) for name, embedder in embedders.items()}
    first = args.features[0]
    keys = sorted(crops[first])
    print(f"{len(keys)} faces from {args.data}; {cpu_summary()}")

    if args.dump or args.compare:
        vectors = embedders[first].extract([crops[first][k] for k in keys])
        if args.dump:
            np.savez(args.dump, keys=np.array(keys), vectors=vectors)
            print(f"wrote {args.dump}")
        if args.compare:
            before = np.load(args.compare)
            reference = dict(zip(before["keys"].tolist(), before["vectors"], strict=True))
            shared = [i for i, k in enumerate(keys) if k in reference]
            cos = np.array([float(vectors[i] @ reference[keys[i]]) for i in shared])
            print(
                f"cosine per face over {len(cos)} faces: min {cos.min():.6f}, "
                f"p1 {np.percentile(cos, 1):.6f}, median {np.median(cos):.6f}, mean {cos.mean():.6f}"
            )

    faces = {name: [by_key[k] for k in sorted(by_key)] for name, by_key in crops.items()}
    for batch in (1, 4):
        for name, times in time_per_face(embedders, faces, batch, args.repeat).items():
            print(
                f"{name}, batch {batch}: {statistics.median(times) * 1000:.1f} ms per face p50 "
                f"({np.percentile(times, 95) * 1000:.1f} p95), {args.repeat} calls"
            )
    if args.concurrency:
        for name, embedder in embedders.items():
            rate = concurrent_rate(embedder, faces[name], args.concurrency, args.seconds)
            print(
                f"{name}, {args.concurrency} threads, one face per call: {rate:.1f} faces/s "
                f"over {args.seconds:.0f} s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
