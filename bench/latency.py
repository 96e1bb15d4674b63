"""Latency of the pipeline, stage by stage in-process, and of the same photos over HTTP.

Run by hand, not in CI:

    make run &                                   # or any running service
    .venv/bin/python bench/latency.py --url http://127.0.0.1:8000 --repeat 30
    # before and after side by side: two services, two artifacts folders, turns taken by photo
    .venv/bin/python bench/latency.py --url http://127.0.0.1:8000 \
        --baseline-artifacts /tmp/before --baseline-url http://127.0.0.1:8001
    # two running services on the one-face photo over HTTP only, one request each in turn
    .venv/bin/python bench/latency.py --url http://127.0.0.1:8000 --alternate http://127.0.0.1:8001

Photos: one face, the shared photo of median size (by pixels), several faces (a composite
of four people), and a large photo (the one-face photo upscaled to 4000 px). Prints a
Markdown table; add --out FILE to write it. With a baseline, each photo's runs alternate
between the two setups in rounds, so a machine that slows down slows both alike;
``--alternate`` interleaves finer still, request by request, for a small difference on a
busy machine. The numbers in docs/benchmarks.md come from this script.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import time
from dataclasses import dataclass
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


def median_photo(data: Path) -> Path:
    """The shared photo with the median pixel count (read from the headers only)."""

    def pixels(path: Path) -> int:
        with Image.open(path) as image:
            return image.width * image.height

    photos = sorted(data.glob("*/*.jpg"), key=lambda path: (pixels(path), path.name))
    return photos[len(photos) // 2]


def photo_set(data: Path) -> dict[str, bytes]:
    one = decode_image((data / ONE_FACE[0]).read_bytes())
    median = median_photo(data)
    median_rgb = decode_image(median.read_bytes())
    several = [decode_image((data / p).read_bytes()) for p in SEVERAL]
    several = np.hstack([cv2.resize(im, (round(im.shape[1] * 400 / im.shape[0]), 400)) for im in several])
    large = cv2.resize(one, (round(one.shape[1] * 4000 / one.shape[0]), 4000), interpolation=cv2.INTER_CUBIC)
    return {
        "one face": jpeg(one),
        f"median photo ({median_rgb.shape[1]} × {median_rgb.shape[0]})": median.read_bytes(),
        "four faces": jpeg(several),
        "large (4000 px)": jpeg(large),
    }


def p50_p95(values: list[float] | None) -> str:
    return f"{percentile(values, 50):.1f} ({percentile(values, 95):.1f})" if values else "-"


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


#: With a baseline, each photo's runs are split into this many turns per setup.
ROUNDS = 4


@dataclass(frozen=True)
class Setup:
    """A model measured in-process, and the service serving it (if any)."""

    label: str
    recognizer: Recognizer
    url: str | None


#: One setup's times for one photo: seconds by stage in-process, and over HTTP.
Timings = tuple[dict[str, list[float]], list[float]]


def measure(setups: list[Setup], data: bytes, repeat: int) -> dict[str, Timings]:
    """Each setup's stage times and HTTP times for ``data``, ``repeat`` runs each, in turns."""
    rounds = ROUNDS if len(setups) > 1 else 1
    results: dict[str, Timings] = {s.label: ({}, []) for s in setups}
    for setup in setups:
        setup.recognizer.recognize_bytes(data)  # warm
    for _ in range(rounds):
        for setup in setups:
            stages, http = results[setup.label]
            for stage, seconds in in_process(setup.recognizer, data, max(1, repeat // rounds)).items():
                stages.setdefault(stage, []).extend(seconds)
            if setup.url:
                http.extend(over_http(setup.url, data, max(1, repeat // rounds)))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", default="svm")
    parser.add_argument("--artifacts", type=Path, default=ROOT / "artifacts")
    parser.add_argument("--detector", help="override the model's detector")
    parser.add_argument("--url", help="also time a running service at this URL")
    parser.add_argument("--alternate", help="with --url: compare this service with it, one-face photo")
    parser.add_argument("--baseline-artifacts", type=Path, help="also time this artifacts folder's model")
    parser.add_argument("--baseline-url", help="and the service serving it")
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

    def setup(label: str, artifacts: Path, url: str | None) -> Setup:
        version = resolve_version_dir(artifacts, args.backend)
        return Setup(label, Recognizer.from_artifact(version, detector=args.detector), url)

    setups = [setup("", args.artifacts, args.url)]
    if args.baseline_artifacts:
        setups = [
            setup("before", args.baseline_artifacts, args.baseline_url),
            setup("after", args.artifacts, args.url),
        ]
    lines = [
        f"{cpu_summary()}, {len(os.sched_getaffinity(0))} cores, "
        f"Python {platform.python_version()}; {args.repeat} runs each; milliseconds, p50 (p95).",
        "",
    ]
    for one in setups:
        m = one.recognizer.manifest
        lines.insert(
            0,
            f"### {one.label} {m.backend}/{m.version}, detector {one.recognizer.detector.name} "
            f"{one.recognizer.detector.params}, features {m.features.name}\n",
        )
    photos = photo_set(args.data)
    header = ["photo", "faces", "decode", "detect", "crop", "features", "classify", "in-process total"]
    if args.url:
        header += ["HTTP", "HTTP / in-process"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, data in photos.items():
        results = measure(setups, data, args.repeat)
        for one in setups:
            stages, http = results[one.label]
            faces = len(one.recognizer.recognize_bytes(data).faces)
            cells = [f"{name}, {one.label}" if one.label else name, str(faces)]
            for stage in header[2:8]:
                key = "total" if stage == "in-process total" else stage
                values = stages.get(key)
                cells.append(
                    f"{percentile(values, 50):.1f} ({percentile(values, 95):.1f})" if values else "-"
                )
            if http:
                ratio = statistics.median(http) / statistics.median(stages["total"])
                cells += [p50_p95(http), f"{ratio:.2f}"]
            lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with args.out.open("a", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
