"""Latency of the pipeline, stage by stage in-process, and of the same photos over HTTP.

Run by hand, not in CI:

    make run &                                   # or any running service
    .venv/bin/python bench/latency.py --url http://127.0.0.1:8000 --repeat 30

Photos: one face, several faces (a composite of four people), and a large photo
(the one-face photo upscaled to 4000 px). Prints a Markdown table; add --out FILE
to write it. The numbers in docs/benchmarks.md come from this script.

``--alternate URL`` compares two running services (a before and an after) on the one-face
photo over HTTP, asking them in turn, one request each, so both see the same moments of a
shared machine's load:

    .venv/bin/python bench/latency.py --url http://127.0.0.1:8000 --alternate http://127.0.0.1:8001
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import time
from pathlib import Path

import cv2
import httpx
import numpy as np
from PIL import Image

from app.artifact.manifest import resolve_version_dir
from app.model.recognizer import Recognizer
from app.pipeline.decode import decode_image
from app.pipeline.numerics import cpu_summary

ROOT = Path(__file__).resolve().parent.parent

DATA = ROOT.parent / "shared" / "data" / "hobbits"
ONE_FACE = ["elijah_wood/0c74cdc40321addb5d50a98e10887c37.jpg"]
SEVERAL = [
    "elijah_wood/0c74cdc40321addb5d50a98e10887c37.jpg",
    "billy_boyd/3.jpg",
    "martin_freeman/220px-Martin_Freeman-5341.jpg",
    "sean_astin/360.jpg",
]


def jpeg(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def photo_set(data: Path) -> dict[str, bytes]:
    one = decode_image((data / ONE_FACE[0]).read_bytes())
    several = [decode_image((data / p).read_bytes()) for p in SEVERAL]
    several = np.hstack([cv2.resize(im, (round(im.shape[1] * 400 / im.shape[0]), 400)) for im in several])
    large = cv2.resize(one, (round(one.shape[1] * 4000 / one.shape[0]), 4000), interpolation=cv2.INTER_CUBIC)
    return {"one face": jpeg(one), "four faces": jpeg(several), "large (4000 px)": jpeg(large)}


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


def in_process(recognizer: Recognizer, data: bytes, repeat: int) -> dict[str, list[float]]:
    stages: dict[str, list[float]] = {}
    for _ in range(repeat):
        start = time.perf_counter()
        result = recognizer.recognize_bytes(data)
        timings = {**result.timings, "total": time.perf_counter() - start}
        for name, seconds in timings.items():
            stages.setdefault(name, []).append(seconds)
    return stages


def over_http(url: str, data: bytes, repeat: int) -> list[float]:
    times = []
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(repeat + 2):
            start = time.perf_counter()
            response = client.post("/v1/classify", files={"file": ("photo.jpg", data, "image/jpeg")})
            times.append(time.perf_counter() - start)
            response.raise_for_status()
    return times[2:]  # the first two warm the connection


def alternating(urls: list[str], data: bytes, repeat: int) -> dict[str, list[float]]:
    """Seconds per request to each of ``urls``, asked in turn (the order flipped every round)."""
    clients = {url: httpx.Client(base_url=url, timeout=60) for url in urls}
    times: dict[str, list[float]] = {url: [] for url in urls}
    for i in range(repeat + 2):  # the first two rounds warm the connections
        for url in urls if i % 2 == 0 else urls[::-1]:
            start = time.perf_counter()
            response = clients[url].post("/v1/classify", files={"file": ("photo.jpg", data, "image/jpeg")})
            elapsed = time.perf_counter() - start
            response.raise_for_status()
            if i >= 2:
                times[url].append(elapsed)
    for client in clients.values():
        client.close()
    return times


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", default="svm")
    parser.add_argument("--artifacts", type=Path, default=ROOT / "artifacts")
    parser.add_argument("--detector", help="override the model's detector")
    parser.add_argument("--url", help="also time a running service at this URL")
    parser.add_argument("--alternate", help="with --url: compare this service with it, one-face photo")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.alternate:
        if not args.url:
            parser.error("--alternate needs --url")
        times = alternating([args.url, args.alternate], photo_set(args.data)["one face"], args.repeat)
        print(f"{cpu_summary()}; one-face photo over HTTP, {args.repeat} requests each, asked in turn")
        for url, values in times.items():
            print(f"{url}: p50 {percentile(values, 50):.1f} ms, p95 {percentile(values, 95):.1f} ms")
        return 0

    recognizer = Recognizer.from_artifact(
        resolve_version_dir(args.artifacts, args.backend), detector=args.detector
    )
    m = recognizer.manifest
    lines = [
        f"### {m.backend}/{m.version}, detector {recognizer.detector.name}, features {m.features.name}",
        "",
        f"{cpu_summary()}, {len(os.sched_getaffinity(0))} cores, "
        f"Python {platform.python_version()}; {args.repeat} runs each; milliseconds, p50 (p95).",
        "",
    ]
    photos = photo_set(args.data)
    header = ["photo", "faces", "decode", "detect", "crop", "features", "classify", "in-process total"]
    if args.url:
        header += ["HTTP", "HTTP / in-process"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, data in photos.items():
        recognizer.recognize_bytes(data)  # warm
        stages = in_process(recognizer, data, args.repeat)
        faces = len(recognizer.recognize_bytes(data).faces)
        cells = [name, str(faces)]
        for stage in header[2:8]:
            key = "total" if stage == "in-process total" else stage
            values = stages.get(key)
            cells.append(f"{percentile(values, 50):.1f} ({percentile(values, 95):.1f})" if values else "-")
        if args.url:
            http = over_http(args.url, data, args.repeat)
            ratio = statistics.median(http) / statistics.median(stages["total"])
            cells += [f"{percentile(http, 50):.1f} ({percentile(http, 95):.1f})", f"{ratio:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with args.out.open("a", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
