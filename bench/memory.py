"""Memory of one server process through a busy life: ready, a mixed load, the largest legal photos.

Run by hand, not in CI (the figures behind the memory requests and limits of
``docker-compose.yml`` and ``deploy/k8s/deployment.yaml``; table in docs/scaling.md):

    .venv/bin/python bench/memory.py
    .venv/bin/python bench/memory.py --artifacts /tmp/other-model     # another model

One fresh server (one worker, the default ``INFERENCE_THREADS``) on a free loopback port. Its
resident memory (VmRSS) and peak (VmHWM) are read from ``/proc`` after each stage:

1. ready: the model loaded and warmed;
2. every shared photo (``--photos``) sent three times, ``--in-flight`` requests at once;
3. six photos of ``MAX_PIXELS`` (40 megapixels) under the upload limit, as many at once: three
   JPEGs (decoded at reduced size) and three PNGs (decoded whole, the worst case), each a
   portrait upscaled onto a plain background so the file stays under 10 MB.
"""

from __future__ import annotations

import argparse
import io
import math
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import httpx
import numpy as np
from PIL import Image

from app.pipeline.decode import DEFAULT_MAX_PIXELS
from app.pipeline.numerics import cpu_summary
from harness.processes import ServerFailed, running_server

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "hobbits"
PORTRAIT = "elijah_wood/0c74cdc40321addb5d50a98e10887c37.jpg"  # under --photos
MAX_UPLOAD = 10 * 1024 * 1024


def status_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of ``pid`` in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return tuple(int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM"))  # type: ignore[return-value]


def largest_photos(portrait: Path) -> list[bytes]:
    """Three JPEGs and three PNGs of ``DEFAULT_MAX_PIXELS``, ``portrait`` in each, under the upload limit."""
    bgr = cv2.imread(str(portrait))
    if bgr is None:
        raise SystemExit(f"error: cannot read the portrait {portrait}")
    face = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    width = round(math.sqrt(DEFAULT_MAX_PIXELS * 4 / 3))
    height = DEFAULT_MAX_PIXELS // width
    canvas = np.full((height, width, 3), 200, np.uint8)
    side = height // 3
    scaled = cv2.resize(
        face, (round(face.shape[1] * side / face.shape[0]), side), interpolation=cv2.INTER_CUBIC
    )
    canvas[side : 2 * side, width // 2 : width // 2 + scaled.shape[1]] = scaled
    files = []
    for fmt, options in (("JPEG", {"quality": 85}), ("PNG", {"compress_level": 6})):
        buffer = io.BytesIO()
        Image.fromarray(canvas).save(buffer, format=fmt, **options)
        if buffer.tell() > MAX_UPLOAD:
            raise SystemExit(
                f"error: the {fmt} of {width} x {height} is {buffer.tell()} bytes, over the upload limit"
            )
        files += [buffer.getvalue()] * 3
    return files


def send_all(base: str, files: list[bytes], in_flight: int) -> None:
    """POST every file to /v1/classify, ``in_flight`` at once; stop at the first answer that is not 200."""

    def post(data: bytes) -> None:
        answer = httpx.post(f"{base}/v1/classify", files={"file": ("photo", data)}, timeout=120)
        if answer.status_code != 200:
            raise SystemExit(f"error: the server answered {answer.status_code}: {answer.text[:200]}")

    with ThreadPoolExecutor(in_flight) as pool:
        list(pool.map(post, files))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--artifacts", type=Path, help="serve the model under this folder (default: the committed)"
    )
    parser.add_argument(
        "--photos", type=Path, default=DATA, help="the mixed load: every JPEG under this folder"
    )
    parser.add_argument("--in-flight", type=int, default=4, help="requests at once")
    args = parser.parse_args()
    photos = [p.read_bytes() for p in sorted(args.photos.rglob("*.jpg"))]
    if not photos:
        raise SystemExit(f"error: no JPEG under {args.photos}")
    env = {"LOG_LEVEL": "WARNING", "MAX_QUEUE_WAIT_S": "600"}  # nothing shed: every photo is measured
    if args.artifacts is not None:
        env["ARTIFACTS_DIR"] = str(args.artifacts.resolve())
    stages = {
        "ready (model loaded and warmed)": [],
        f"after 3 x {len(photos)} real photos, {args.in_flight} requests in flight": photos * 3,
        f"then six 40-megapixel uploads (3 JPEG, 3 PNG), {args.in_flight} in flight": largest_photos(
            args.photos / PORTRAIT
        ),
    }
    print(f"CPU: {cpu_summary()}")
    print("| state | RSS | peak |\n|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as folder:
        try:
            with running_server(Path(folder) / "server.log", env=env) as base:
                for name, files in stages.items():
                    send_all(base, files, args.in_flight)
                    rss, peak = status_mb(base.pid)
                    print(f"| {name} | {rss:.0f} MB | {peak:.0f} MB |", flush=True)
        except ServerFailed as exc:
            raise SystemExit(f"error: {str(exc).splitlines()[0]}") from None


if __name__ == "__main__":
    main()
