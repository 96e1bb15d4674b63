"""Load test: N concurrent clients post photos to /v1/classify on loopback; bounded in count and time.

Run by hand (the short version runs in CI as tests/test_load.py):

    .venv/bin/python bench/load.py --workers 1                   # start a server, 1 worker, 2,000 requests
    .venv/bin/python bench/load.py --workers 2 --rounds 5        # 2 workers, 5 runs back to back (RSS trend)
    .venv/bin/python bench/load.py --url http://127.0.0.1:8000   # a server already running on this machine
    .venv/bin/python bench/load.py --overload --clients 250 --requests 250 --faces 4   # a burst

``--overload`` is for many more clients than the server has threads: a 503 with
``Retry-After`` counts as shed, not as an error, and the client waits that long before
its next request (as a polite client would). It reports admitted (200) and shed
counts with latency percentiles for each, answers slower than ``--time-limit``, and the
server's own ``inference_shed_total`` and ``inference_dropped_total`` from ``/metrics``.
``--faces N`` sends one photo of N people side by side (the first photo of each of the
first N people in the shared data) instead of ``--photo``.

Each round sends ``--requests`` requests from ``--clients`` concurrent clients (asyncio +
httpx, one keep-alive connection each) and stops early at ``--max-seconds``. It reports
errors (any answer but 200, or a dropped connection), latency p50/p95/p99, throughput,
the server's resident memory (VmRSS of the server process and all its children)
before and after, and the CPU time per request sent of the server (the same processes) and
of this client. Only loopback addresses are accepted. ``--json FILE`` writes the
results. The numbers in docs/load.md come from this script.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import platform
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np
from PIL import Image, ImageOps
from prometheus_client.parser import text_string_to_metric_families

from harness.processes import ServerFailed, ServerURL, answers, running_server

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("HOBBIT_DATA", ROOT.parent / "shared" / "data" / "hobbits"))
#: The photo the README shows: one face, 330 x 413.
DEFAULT_PHOTO = DATA / "elijah_wood" / "0c74cdc40321addb5d50a98e10887c37.jpg"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


# --- the server's memory -------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    kids.append(int(entry.name))
    return kids


def _rss(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def server_rss(pid: int) -> dict[str, int]:
    """VmRSS in bytes of ``pid`` and every descendant (uvicorn's workers), and their total."""
    processes, todo = {}, [pid]
    while todo:
        p = todo.pop()
        processes[str(p)] = _rss(p)
        todo.extend(_children(p))
    return {"total": sum(processes.values()), **processes}


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and every descendant."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        todo.extend(_children(p))
    return total


def listening_pid(url: str) -> int | None:
    """The pid of the process listening on ``url``'s port, if this user can see it (Linux only)."""
    port = urlparse(url).port or 80
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # LISTEN
                    inodes.add(fields[9])
    candidates = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                target = str(fd.readlink())
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    candidates.append(int(entry.name))
                    break
    # With several workers, all of them and the supervisor hold the socket: the supervisor is the one
    # whose parent does not hold it.
    for pid in candidates:
        with contextlib.suppress(OSError):
            parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent not in candidates:
                return pid
    return None


# --- a server of our own -------------------------------------------------------------------


@contextlib.contextmanager
def start_server(workers: int, log: Path, timeout: float = 180.0) -> Iterator[tuple[str, int]]:
    """``python -m app serve`` with ``workers`` workers on a free loopback port; waits for every model."""

    def every_model_loaded(base: ServerURL) -> bool:
        loaded = log.read_text(errors="replace").count("serving model") >= workers
        return loaded and answers("/readyz")(base)

    env = {"WORKERS": str(workers), "LOG_LEVEL": "INFO"}
    try:
        with running_server(log, env=env, ready=every_model_loaded, timeout=timeout) as base:
            yield base, base.pid
    except ServerFailed as exc:
        raise SystemExit(str(exc)) from None


def faces_photo(count: int) -> bytes:
    """A JPEG of ``count`` people side by side, 480 px high: the first photo of each of the first people."""
    people = sorted(p for p in DATA.iterdir() if p.is_dir())[:count]
    if len(people) < count:
        raise SystemExit(f"--faces {count}: only {len(people)} people in {DATA}")
    tiles = []
    for person in people:
        first = min(p for p in person.iterdir() if p.suffix.lower() in {".jpg", ".jpeg"})
        with Image.open(first) as image:
            tile = ImageOps.exif_transpose(image).convert("RGB")
            tiles.append(tile.resize((round(tile.width * 480 / tile.height), 480)))
    sheet = Image.new("RGB", (sum(t.width for t in tiles), 480))
    for tile, x in zip(tiles, np.cumsum([0] + [t.width for t in tiles[:-1]]), strict=True):
        sheet.paste(tile, (int(x), 0))
    out = io.BytesIO()
    sheet.save(out, format="JPEG", quality=90)
    return out.getvalue()


# --- the load ------------------------------------------------------------------------------


def _percentiles(seconds: list[float], prefix: str = "") -> dict[str, float | None]:
    ms = np.asarray(seconds) * 1000
    stats = {"p50_ms": 50, "p95_ms": 95, "p99_ms": 99}
    values = {name: float(np.percentile(ms, q)) if len(ms) else None for name, q in stats.items()}
    values["max_ms"] = float(ms.max()) if len(ms) else None
    return {prefix + k: None if v is None else round(v, 1) for k, v in values.items()}


async def run_load(
    url: str,
    photo: bytes,
    clients: int,
    requests: int,
    max_seconds: float,
    overload: bool = False,
    time_limit: float = 30.0,
) -> dict:
    """``requests`` posts from ``clients`` concurrent clients, or fewer if ``max_seconds`` runs out.

    With ``overload``, a 503 carrying ``Retry-After`` is shed load, and its client waits that long.
    """
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    by_outcome: dict[str, list[float]] = {"200": [], "shed": []}
    issued = 0
    deadline = time.monotonic() + max_seconds

    # The multipart body is encoded once: the clients share the machine with the server, so
    # each request should cost the client as little as possible.
    form = httpx.Request("POST", url, files={"file": ("photo.jpg", photo, "image/jpeg")})
    body, headers = form.read(), {"Content-Type": form.headers["Content-Type"]}

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal issued
        while issued < requests and time.monotonic() < deadline:
            issued += 1
            start = time.perf_counter()
            retry_after = None
            try:
                response = await http.post("/v1/classify", content=body, headers=headers)
                outcome = str(response.status_code)
                retry_after = response.headers.get("retry-after")
            except httpx.HTTPError as exc:
                outcome = type(exc).__name__
            elapsed = time.perf_counter() - start
            if overload and outcome == "503" and retry_after is not None and elapsed < time_limit:
                outcome = "shed"  # at or past the time limit it is a timed-out answer, not shed load
            latencies.append(elapsed)
            outcomes[outcome] += 1
            by_outcome.setdefault(outcome, []).append(elapsed)
            if outcome == "shed":
                await asyncio.sleep(min(float(retry_after), max(0.0, deadline - time.monotonic())))

    # One pool of ``clients`` keep-alive connections: each client holds one while it waits for
    # its answer. (A client object each would build 250 TLS contexts before the first request.)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    start = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    elapsed = time.perf_counter() - start
    result = {
        "requests": len(latencies),
        "errors": sum(n for k, n in outcomes.items() if k not in {"200", "shed"}),
        "outcomes": dict(outcomes),
        "seconds": round(elapsed, 2),
        "throughput_rps": round(len(latencies) / elapsed, 1),
        **_percentiles(latencies),
        "timed_out": len(latencies) < requests,
    }
    if overload:
        result |= {
            "admitted": outcomes["200"],
            "shed": outcomes["shed"],
            "admitted_throughput_rps": round(outcomes["200"] / elapsed, 1),
            **_percentiles(by_outcome["200"], "admitted_"),
            **_percentiles(by_outcome["shed"], "shed_"),
            "over_time_limit": sum(t > time_limit for t in latencies),
        }
    return result


def server_counters(url: str) -> Counter[str]:
    """The server's own view from /metrics (one worker's, when there are several): requests shed
    and dropped, and the cumulative latency buckets of /v1/classify answers by status."""
    counters: Counter[str] = Counter()
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name in {"inference_shed_total", "inference_dropped_total"}:
                counters[sample.name.removesuffix("_total")] += sample.value
            elif sample.name == "http_request_duration_seconds_bucket" and sample.labels["route"] == (
                "/v1/classify"
            ):
                counters[f"{sample.labels['status']} le {sample.labels['le']}"] += sample.value
    return counters


def server_view(before: Counter[str], after: Counter[str]) -> dict[str, float | str]:
    """What the server counted during a round: shed and dropped photos, and for each status the
    bucket bound (s) that its 50th and 99th percentile and its slowest answer fall under."""
    delta = {k: after[k] - before[k] for k in after}
    view: dict[str, float | str] = {k: v for k, v in delta.items() if " le " not in k}
    for status in sorted({k.split()[0] for k in delta if " le " in k}):
        buckets = sorted(
            ((float(k.rsplit(" ", 1)[1]), n) for k, n in delta.items() if k.startswith(f"{status} le ")),
        )
        total = buckets[-1][1]
        if not total:
            continue
        view[f"{status}_count"] = total
        for name, share in (("p50", 0.5), ("p99", 0.99), ("max", 1.0)):
            bound = next(le for le, n in buckets if n >= share * total)
            view[f"{status}_{name}_under_s"] = bound if bound != float("inf") else "inf"
    return view


def bench(url: str, pid: int | None, args: argparse.Namespace) -> dict:
    photo = faces_photo(args.faces) if args.faces else args.photo.read_bytes()
    # Warm-up outside the measurement: the first requests of each worker pay for lazy set-up.
    warm = min(args.clients, 16)
    asyncio.run(run_load(url, photo, warm, warm * 2, args.max_seconds))
    rounds = []
    for number in range(1, args.rounds + 1):
        before = server_rss(pid) if pid else None
        cpu_before = (server_cpu(pid) if pid else 0.0, time.process_time())
        load_before = os.getloadavg()[0]
        counters = server_counters(url) if args.overload else Counter()
        result = asyncio.run(
            run_load(
                url, photo, args.clients, args.requests, args.max_seconds, args.overload, args.time_limit
            )
        )
        if args.overload:
            result["server"] = server_view(counters, server_counters(url))
        after = server_rss(pid) if pid else None
        # CPU per request sent: on a shared machine a steadier measure of the server's cost than
        # throughput, which the other users' load moves (this client shares the cores too).
        sent = max(1, result["requests"])
        result["client_cpu_ms_per_request"] = round((time.process_time() - cpu_before[1]) / sent * 1000, 2)
        result["load_average_at_start"] = round(load_before, 2)
        if pid:
            result["server_cpu_ms_per_request"] = round((server_cpu(pid) - cpu_before[0]) / sent * 1000, 2)
            result["rss_before_mb"] = round(before["total"] / 2**20, 1)
            result["rss_after_mb"] = round(after["total"] / 2**20, 1)
            result["processes"] = len(after) - 1
        rounds.append(result)
        print(f"round {number}: " + json.dumps(result), flush=True)
    return {
        "url": url,
        "workers": args.workers,
        "clients": args.clients,
        "requests_per_round": args.requests,
        "photo": f"{args.faces} people side by side" if args.faces else str(args.photo),
        "overload": args.overload,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "versions": _versions(),
        "rounds": rounds,
    }


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {
        name: version(name) for name in ("uvicorn", "fastapi", "starlette", "httpx", "opencv-python-headless")
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--url", help="a running server on this machine (loopback only)")
    target.add_argument(
        "--workers", type=int, choices=[1, 2], default=1, help="start a server with this many"
    )
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--requests", type=int, default=2000, help="requests per round (default 2000)")
    parser.add_argument("--rounds", type=int, default=1, help="runs back to back, for the memory trend")
    parser.add_argument("--max-seconds", type=float, default=600, help="stop a round after this long")
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO, help="the image every request sends")
    parser.add_argument("--faces", type=int, help="send N people side by side instead of --photo")
    parser.add_argument(
        "--overload", action="store_true", help="503 + Retry-After is shed load, not an error; report both"
    )
    parser.add_argument(
        "--time-limit", type=float, default=30.0, help="count answers slower than this (REQUEST_TIMEOUT_S)"
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if not 0 < args.requests <= 100_000 or not 0 < args.clients <= 256 or not 0 < args.rounds <= 50:
        parser.error("keep it bounded: 1..100000 requests, 1..256 clients, 1..50 rounds")
    if args.faces is not None and not 1 <= args.faces <= 4:
        parser.error("--faces takes 1..4 (a face per person, each large enough to be found)")

    if args.url:
        if urlparse(args.url).hostname not in LOOPBACK:
            parser.error("--url must be a loopback address (127.0.0.1, localhost, ::1)")
        args.workers = None
        result = bench(args.url, listening_pid(args.url), args)
    else:
        with (
            tempfile.TemporaryDirectory() as tmp,
            start_server(args.workers, Path(tmp) / "server.log") as (
                url,
                pid,
            ),
        ):
            result = bench(url, pid, args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 1 if any(r["errors"] for r in result["rounds"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
