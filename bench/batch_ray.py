"""Throughput of the batch CLI's engines on this machine: local threads vs Ray actors.

    .venv/bin/python bench/batch_ray.py --photos 500

Builds a folder of N photos by copying the shared photos round-robin under new names
(real photos at full size, so reading and decoding cost what they cost), then times,
in one process: the local engine; a local Ray cluster's start (``ray.init``, reported
apart: a real cluster is started once, not per job); the Ray engine with each
actors x threads layout; and the local engine again, since the machine is shared and
drifts. Every timing includes loading the model (the local engine's one load, the
actors' loads), as a job pays it. Then it profiles one thread over a sample of the
photos stage by stage, to say what limits throughput: reading, decoding or the model.
Numbers go in docs/scaling.md.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import ray

from app import batch, batch_ray
from app.config import PROJECT_ROOT, Settings
from app.model_host import ModelHost

DATA = PROJECT_ROOT.parent / "shared" / "data" / "hobbits"
#: (actors, threads per actor) tried on the Ray engine by default.
LAYOUTS = "1x1,2x1,1x2"


def make_folder(data: Path, n: int, root: Path) -> Path:
    """``n`` photos copied round-robin from ``data`` (class folders kept, names made unique)."""
    sources = sorted(p for p in data.rglob("*") if p.is_file() and batch.is_image(p))
    folder = root / "photos"
    for index in range(n):
        source = sources[index % len(sources)]
        target = folder / source.parent.name / f"{index:05d}-{source.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    return folder


def timed(label: str, n: int, run) -> float:
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    print(f"| {label} | {seconds:.1f} s | {n / seconds:.2f} |", flush=True)
    return n / seconds


def profile(folder: Path, settings: Settings, sample: int) -> None:
    """Mean seconds per photo of each stage, on one thread: what a core spends its time on."""
    cv2.setNumThreads(1)  # one core, as a Ray actor with one CPU runs it
    recognizer = ModelHost(settings.model_copy(update={"inference_threads": 1})).load()
    stages: dict[str, list[float]] = {}
    for path in sorted(folder.rglob("*.*"))[:sample]:
        start = time.perf_counter()
        data = path.read_bytes()
        read = time.perf_counter()
        photo = recognizer.decode(data, settings.max_pixels)
        decoded = time.perf_counter()
        result = recognizer.recognize_photo(photo)
        for name, seconds in {"read": read - start, "decode": decoded - read, **result.timings}.items():
            stages.setdefault(name, []).append(seconds)
    total = sum(sum(v) for v in stages.values()) / sample
    print(f"\nstages on one thread, mean over {sample} photos ({total * 1000:.0f} ms per photo):\n")
    print("| stage | ms per photo | share |\n|---|---|---|")
    for name, values in stages.items():
        mean = sum(values) / sample  # a stage that did not run (no face) counts as 0 for that photo
        print(f"| {name} | {mean * 1000:.1f} | {mean / total:.0%} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=500)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--backend", default="svm")
    parser.add_argument("--layouts", default=LAYOUTS, help="Ray layouts to time, as ACTORSxTHREADS,...")
    parser.add_argument("--profile", type=int, default=100, help="photos in the per-stage profile (0: none)")
    args = parser.parse_args()
    settings = Settings(_env_file=None, classifier_backend=args.backend)
    n = args.photos
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        root = Path(tmp)
        folder = make_folder(args.data, n, root)
        print(f"{n} photos, {args.backend}, {settings.inference_threads} local threads\n")
        print("| run | wall time | photos/s |\n|---|---|---|")
        local = [timed("local engine", n, lambda: batch.classify_folder(folder, root / "a.jsonl", settings))]
        start = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
        print(f"| (ray.init, once per cluster) | {time.perf_counter() - start:.1f} s | |", flush=True)
        rates = {}
        layouts = [tuple(int(x) for x in layout.split("x")) for layout in args.layouts.split(",")]
        for actors, threads in layouts:
            options = batch_ray.RayOptions(actors=actors, threads_per_actor=threads)
            out = str(root / f"ray-{actors}x{threads}.parquet")
            label = f"ray, {actors} actor(s) x {threads} thread(s)"
            rates[label] = timed(
                label, n, lambda o=options, d=out: batch_ray.classify_store(str(folder), d, settings, o)
            )
        ray.shutdown()
        local.append(
            timed("local engine, again", n, lambda: batch.classify_folder(folder, root / "b.jsonl", settings))
        )
        mean_local = statistics.mean(local)
        print(f"\nlocal engine, mean of both runs: {mean_local:.2f} photos/s")
        for label, rate in rates.items():
            print(f"{label}: {rate / mean_local:.2f}x the local engine")
        if args.profile:
            profile(folder, settings, min(args.profile, n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
