"""Capacity of one server on loopback: a steady load of real photos, and a burst far past capacity.

Run by hand (a short version of each load runs in CI: tests/test_load.py):

    .venv/bin/python bench/load.py steady            # 16 clients x 25 shared photos of mixed sizes
    .venv/bin/python bench/load.py burst             # 250 clients at once, a four-face photo each
    .venv/bin/python bench/load.py both --rounds 3   # both loads, three times
    .venv/bin/python bench/load.py both --rounds 3 \\
        --variant "wait1: MAX_QUEUE_WAIT_S=1" --variant "wait1.5: MAX_QUEUE_WAIT_S=1.5"   # side by side
    .venv/bin/python bench/load.py steady --url http://127.0.0.1:8000      # a server already running
    .venv/bin/python bench/load.py both --url http://127.0.0.1:8001 --url http://127.0.0.1:8002
                                                    # two running servers (before, after), alternated

**steady**: ``--clients`` clients each post ``--photos-per-client`` photos one after another,
each on its own keep-alive connection. The photos are the shared photos (``--photos``, every
JPEG under it, in a fixed shuffled order; each client starts at a different place), so sizes
are mixed as users send them; ``--photo FILE`` sends one file instead. Every answer but 200
is an error, a 503 included.

**burst**: ``--clients`` clients connect and post one photo each, all at once: four people side
by side (``--faces``), so each admitted photo costs four embeddings. An answer is 200
(admitted) or 503 with ``Retry-After`` (shed); anything else is an error.

During both, another process asks ``/readyz`` every 50 ms on its own connection. Each round
reports the answers by kind, the admitted p50/p95/p99/max, the slowest 503, ``/readyz``'s
slowest answer, the server's own view from ``/metrics``, the load average at the start,
and, for a server the script can see, its resident memory and CPU time per request.

Variants: each ``--variant "NAME: KEY=VALUE ..."`` is a server of its own, started with those
settings in its environment (or each ``--url`` a server already running). All are started
first; then each round runs every variant in turn (A B A B ...), so that on a shared machine
they meet the same load. Any setting works, ``OMP_NUM_THREADS`` (ONNX Runtime's threads per
call) included. The targets of docs/load.md are checked for each round; ``--json FILE``
writes everything. Only loopback addresses are accepted. The exit status is 1 when any
round had an error (as defined above).

The client is HTTP/1.1 written with h11 over asyncio streams: it shares the cores with the
server it measures, and httpx cost it several times more CPU per upload than the server spent
shedding one (docs/load.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import io
import json
import multiprocessing
import os
import platform
import random
import shlex
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import h11
import httpx
import numpy as np
from PIL import Image, ImageOps
from prometheus_client.parser import text_string_to_metric_families

from app.pipeline.numerics import cpu_summary
from harness.processes import ServerFailed, ServerURL, answers, running_server

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("HOBBIT_DATA", ROOT.parent / "shared" / "data" / "hobbits"))
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
#: The issue's targets (docs/load.md): checked for every round, reported, never asserted.
STEADY_P95_S = 1.0
BURST_SHED_MAX_S = 0.1
BURST_ADMITTED_P99_S = 2.0
READYZ_MAX_S = 0.1
PROBE_EVERY_S = 0.05
REQUEST_TIMEOUT_S = 120.0


# --- the server's memory and CPU (Linux /proc) ---------------------------------------------


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if _parent(int(entry.name)) == pid:
                    kids.append(int(entry.name))
    return kids


def _tree(pid: int) -> list[int]:
    processes, todo = [], [pid]
    while todo:
        p = todo.pop()
        processes.append(p)
        todo.extend(_children(p))
    return processes


def _rss(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def server_rss(pid: int) -> tuple[int, int]:
    """VmRSS in bytes summed over ``pid`` and every descendant (uvicorn's workers), and their number."""
    processes = _tree(pid)
    return sum(_rss(p) for p in processes), len(processes)


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and every descendant."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in _tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
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
            if _parent(pid) not in candidates:
                return pid
    return None


# --- servers of our own --------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """A server started with ``env`` added to this environment, or a running one at ``url``."""

    name: str
    env: dict[str, str] = field(default_factory=dict)
    url: str | None = None


def parse_variant(text: str) -> Variant:
    """``"NAME: KEY=VALUE KEY=VALUE"`` (or ``"KEY=VALUE ..."``, named by its settings)."""
    head, colon, tail = text.partition(":")
    name, settings = (head.strip(), tail) if colon and "=" not in head else ("", text)
    pairs = shlex.split(settings)
    if not all("=" in p and p.split("=", 1)[0].isidentifier() for p in pairs):
        raise argparse.ArgumentTypeError(f"{text!r}: expected 'NAME: KEY=VALUE ...'")
    env = dict(p.split("=", 1) for p in pairs)
    return Variant(name or " ".join(pairs) or "defaults", env)


@contextlib.contextmanager
def start_server(
    variant: Variant, workers: int, log: Path, timeout: float = 300.0
) -> Iterator[tuple[str, int]]:
    """``python -m app serve`` on a free loopback port with ``variant``'s settings; waits for every model."""

    def every_model_loaded(base: ServerURL) -> bool:
        loaded = log.read_text(errors="replace").count("serving model") >= workers
        return loaded and answers("/readyz")(base)

    env = {"WORKERS": str(workers), **variant.env}
    try:
        with running_server(log, env=env, ready=every_model_loaded, timeout=timeout) as base:
            yield base, base.pid
    except ServerFailed as exc:
        raise SystemExit(f"the server {variant.name!r}: {exc}") from None


# --- photos --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """A photo encoded once as a multipart body, so that sending it costs the client nothing more."""

    name: str
    size: int
    body: bytes
    content_type: str


def upload(name: str, photo: bytes) -> Upload:
    form = httpx.Request("POST", "http://x/", files={"file": ("photo.jpg", photo, "image/jpeg")})
    return Upload(name, len(photo), form.read(), form.headers["Content-Type"])


@dataclass(frozen=True)
class Loads:
    """What each scenario sends: the steady photos, in order, and the burst's one photo."""

    steady: list[Upload]
    burst: Upload | None


def mixed_photos(folder: Path, seed: int = 26) -> list[Upload]:
    """Every JPEG under ``folder`` (each person's subfolder), in a fixed shuffled order."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg"})
    if not files:
        raise SystemExit(f"no JPEG photos under {folder}")
    random.Random(seed).shuffle(files)
    return [upload(str(p.relative_to(folder)), p.read_bytes()) for p in files]


def faces_photo(count: int) -> Upload:
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
    return upload(f"{count} people side by side", out.getvalue())


# --- the client ----------------------------------------------------------------------------


@dataclass
class Answer:
    """One request's outcome: ``kind`` is the status ("200", "503") or the error's name."""

    kind: str
    seconds: float
    retry_after: str | None = None


class Connection:
    """One HTTP/1.1 keep-alive connection: h11 over asyncio streams. Reconnects after a close."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._h11 = h11.Connection(h11.CLIENT)

    async def post(self, target: str, photo: Upload) -> Answer:
        """Send ``photo`` whole, then read the answer (as urllib, requests and httpx do)."""
        start = time.perf_counter()
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                status, headers = await self._exchange(target, photo)
        except TimeoutError:
            self.close()
            return Answer("Timeout", time.perf_counter() - start)
        except (OSError, h11.ProtocolError, EOFError) as exc:
            self.close()
            return Answer(type(exc).__name__, time.perf_counter() - start)
        return Answer(str(status), time.perf_counter() - start, headers.get("retry-after"))

    async def _exchange(self, target: str, photo: Upload) -> tuple[int, dict[str, str]]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
            self._h11 = h11.Connection(h11.CLIENT)
        reader, writer = self._streams
        head = [
            ("Host", f"{self.host}:{self.port}"),
            ("Content-Type", photo.content_type),
            ("Content-Length", str(len(photo.body))),
        ]
        writer.write(self._h11.send(h11.Request(method="POST", target=target, headers=head)) or b"")
        writer.write(self._h11.send(h11.Data(data=photo.body)) or b"")
        writer.write(self._h11.send(h11.EndOfMessage()) or b"")
        await writer.drain()
        response: h11.Response | None = None
        while True:
            event = self._h11.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                if not data and response is None:
                    raise EOFError("the server closed the connection without an answer")
                self._h11.receive_data(data)
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                break
        assert response is not None
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()
        else:
            self.close()
        headers = {k.decode().lower(): v.decode() for k, v in response.headers}
        return response.status_code, headers

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


async def steady_load(
    host: str, port: int, photos: Sequence[Upload], clients: int, each: int
) -> list[Answer]:
    """``clients`` clients post ``each`` photos one after another; client k starts k/clients of the way in."""

    async def client(k: int) -> list[Answer]:
        connection = Connection(host, port)
        offset = k * len(photos) // clients
        try:
            return [
                await connection.post("/v1/classify", photos[(offset + i) % len(photos)]) for i in range(each)
            ]
        finally:
            connection.close()

    return [a for answers in await asyncio.gather(*(client(k) for k in range(clients))) for a in answers]


async def burst_load(host: str, port: int, photo: Upload, clients: int) -> list[Answer]:
    """``clients`` clients connect and post ``photo`` at the same moment, one request each."""

    async def client() -> Answer:
        connection = Connection(host, port)
        try:
            return await connection.post("/v1/classify", photo)
        finally:
            connection.close()

    return list(await asyncio.gather(*(client() for _ in range(clients))))


def run_client(load: Coroutine[Any, Any, list[Answer]]) -> list[Answer]:
    """Run a load on uvloop when it is installed (as uvicorn does): the client costs less CPU."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(load)
    return uvloop.run(load)


# --- /readyz, watched from a process of its own --------------------------------------------


def _probe(host: str, port: int, stop: Pipe) -> None:
    """Ask /readyz every PROBE_EVERY_S until told to stop; send back (seconds, status) pairs.

    Says "ready" after its first answer, so the load starts only once it is watching.
    """
    connection = http.client.HTTPConnection(host, port, timeout=30)
    seen: list[tuple[float, int]] = []

    def ask() -> None:
        start = time.perf_counter()
        try:
            connection.request("GET", "/readyz")
            response = connection.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            connection.close()
            status = 0
        seen.append((time.perf_counter() - start, status))

    ask()
    stop.send("ready")
    while not stop.poll(PROBE_EVERY_S):
        ask()
    stop.send(seen)


@contextlib.contextmanager
def readyz_watch(host: str, port: int) -> Iterator[list[tuple[float, int]]]:
    """While inside, a separate process probes /readyz; the list fills with what it saw on exit
    (its first probe, made before the load starts, is left out)."""
    context = multiprocessing.get_context("spawn")
    here, there = context.Pipe()
    prober = context.Process(target=_probe, args=(host, port, there), daemon=True)
    prober.start()
    if not here.poll(60) or here.recv() != "ready":
        prober.kill()
        raise SystemExit("the /readyz prober did not start within 60 s")
    seen: list[tuple[float, int]] = []
    try:
        yield seen
    finally:
        here.send("stop")
        seen.extend(here.recv()[1:])
        prober.join(timeout=30)


# --- the server's own view -----------------------------------------------------------------


def server_counters(url: str) -> dict[str, float]:
    """From /metrics (one worker's, when there are several): photos shed and dropped, and the
    cumulative latency buckets of /v1/classify answers by status."""
    counters: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=30).text):
        for sample in family.samples:
            if sample.name in {"inference_shed_total", "inference_dropped_total"}:
                reason = sample.labels.get("reason", "")
                counters[f"{sample.name.removesuffix('_total')} {reason}".strip()] += sample.value
            elif sample.name == "http_request_duration_seconds_bucket" and sample.labels["route"] == (
                "/v1/classify"
            ):
                counters[f"{sample.labels['status']} le {sample.labels['le']}"] += sample.value
    return counters


def server_view(before: dict[str, float], after: dict[str, float]) -> dict[str, float | str]:
    """What the server counted during a round: shed and dropped photos, and for each status the
    bucket bound (s) that its 50th and 99th percentile and its slowest answer fall under."""
    delta = {k: after[k] - before.get(k, 0.0) for k in after}
    view: dict[str, float | str] = {k: v for k, v in delta.items() if " le " not in k and v}
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


def wait_until_idle(url: str, timeout: float = 120.0) -> None:
    """Until no photo is in flight or waiting: a round must not start behind the last one's work."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gauges = {
            s.name: s.value
            for f in text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=30).text)
            for s in f.samples
            if s.name in {"inference_in_flight", "inference_queue_depth"}
        }
        if not any(gauges.values()):
            return
        time.sleep(0.2)


# --- a round -------------------------------------------------------------------------------


def _ms(seconds: Sequence[float]) -> dict[str, float | None]:
    values = np.asarray(seconds) * 1000
    stats = {f"p{q}": float(np.percentile(values, q)) if len(values) else None for q in (50, 95, 99)}
    stats["max"] = float(values.max()) if len(values) else None
    return {k: None if v is None else round(v, 1) for k, v in stats.items()}


def summarize(scenario: str, answers: list[Answer], probes: list[tuple[float, int]], seconds: float) -> dict:
    """Counts by kind, errors, latencies and the targets' verdicts for one round."""
    kinds = Counter(a.kind for a in answers)
    admitted = [a.seconds for a in answers if a.kind == "200"]
    shed = [a for a in answers if a.kind == "503"]
    if scenario == "steady":
        errors = len(answers) - len(admitted)
    else:  # a 503 without Retry-After is not a shed answer a client can act on
        errors = sum(
            1 for a in answers if a.kind not in {"200", "503"} or (a.kind == "503" and not a.retry_after)
        )
    readyz = [s for s, _ in probes]
    admitted_ms, shed_ms = _ms(admitted), _ms([a.seconds for a in shed])
    readyz_not_200 = sum(s != 200 for _, s in probes)
    if scenario == "steady":
        p95 = admitted_ms["p95"]
        targets = {
            "0 errors": errors == 0,
            f"p95 <= {STEADY_P95_S:g} s": p95 is not None and p95 <= STEADY_P95_S * 1000,
        }
    else:
        slowest_503, p99 = shed_ms["max"], admitted_ms["p99"]
        targets = {
            "only 200 or 503 with Retry-After": errors == 0,
            f"every 503 within {BURST_SHED_MAX_S * 1000:g} ms": slowest_503 is None
            or slowest_503 <= BURST_SHED_MAX_S * 1000,
            f"admitted p99 <= {BURST_ADMITTED_P99_S:g} s": p99 is not None
            and p99 <= BURST_ADMITTED_P99_S * 1000,
        }
    targets[f"/readyz within {READYZ_MAX_S * 1000:g} ms"] = (
        bool(readyz) and max(readyz) <= READYZ_MAX_S and not readyz_not_200
    )
    return {
        "requests": len(answers),
        "answers": dict(kinds),
        "errors": errors,
        "seconds": round(seconds, 2),
        "admitted_per_s": round(len(admitted) / seconds, 1),
        "admitted_ms": admitted_ms,
        "shed": len(shed),
        "shed_ms": shed_ms,
        "readyz": {"probes": len(probes), "not_200": readyz_not_200, "ms": _ms(readyz)},
        "targets_met": targets,
    }


def one_round(scenario: str, url: str, pid: int | None, args: argparse.Namespace, loads: Loads) -> dict:
    host, port = urlparse(url).hostname or "127.0.0.1", urlparse(url).port or 80
    wait_until_idle(url)
    rss_before = server_rss(pid)[0] if pid else 0
    cpu_before = (server_cpu(pid) if pid else 0.0, time.process_time())
    load = os.getloadavg()[0]
    counters = server_counters(url)
    if scenario == "steady":
        load_run = steady_load(host, port, loads.steady, args.clients or 16, args.photos_per_client)
    else:
        assert loads.burst is not None
        load_run = burst_load(host, port, loads.burst, args.clients or 250)
    with readyz_watch(host, port) as probes:
        start = time.perf_counter()
        answers = run_client(load_run)
        seconds = time.perf_counter() - start
    result = {"scenario": scenario, "load_average_at_start": round(load, 2)}
    result |= summarize(scenario, answers, probes, seconds)
    result["server"] = server_view(counters, server_counters(url))
    sent = max(1, len(answers))
    # CPU per request: on a shared machine a steadier measure of cost than throughput, which
    # the other users' load moves (this client shares the cores too).
    result["client_cpu_ms_per_request"] = round((time.process_time() - cpu_before[1]) / sent * 1000, 2)
    if pid:
        result["server_cpu_ms_per_request"] = round((server_cpu(pid) - cpu_before[0]) / sent * 1000, 2)
        rss_after, processes = server_rss(pid)
        result["rss_mb"] = [round(rss_before / 2**20, 1), round(rss_after / 2**20, 1)]
        result["processes"] = processes
    return result


def warm_up(url: str, loads: Loads, count: int) -> None:
    """``count`` of the steady photos and ``count`` // 4 burst photos, two at a time, outside the
    measurement: the first requests pay for lazy set-up, and admission learns what photos of
    each size cost on this machine."""
    if count <= 0:
        return
    host, port = urlparse(url).hostname or "127.0.0.1", urlparse(url).port or 80
    uploads = [loads.steady[i % len(loads.steady)] for i in range(count)] if loads.steady else []
    uploads += [loads.burst] * (count // 4) if loads.burst else []
    run_client(steady_load(host, port, uploads, 2, max(1, len(uploads) // 2)))


def markdown(results: list[dict]) -> str:
    """One table row per round, as docs/load.md shows them."""
    head = (
        "| scenario | variant | load avg | answers | errors | admitted p50 / p95 / p99 / max ms "
        "| slowest 503 ms | /readyz max ms | server CPU ms/request | targets |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for r in results:
        admitted = r["admitted_ms"]
        answers = ", ".join(f"{n} × {k}" for k, n in sorted(r["answers"].items()))
        missed = [name for name, met in r["targets_met"].items() if not met]
        verdict = "met" if not missed else "missed: " + ", ".join(missed)
        rows.append(
            f"| {r['scenario']} | {r['variant']} | {r['load_average_at_start']} | {answers} | {r['errors']} "
            f"| {admitted['p50']} / {admitted['p95']} / {admitted['p99']} / {admitted['max']} "
            f"| {r['shed_ms']['max'] or '—'} | {r['readyz']['ms']['max']} "
            f"| {r.get('server_cpu_ms_per_request', '—')} | {verdict} |"
        )
    return head + "\n".join(rows)


# --- the command ---------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    names = ("uvicorn", "fastapi", "starlette", "onnxruntime", "opencv-python-headless", "h11")
    return {name: version(name) for name in names}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=["steady", "burst", "both"], help="which load (see above)")
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--url", action="append", help="a running server on this machine, loopback only (repeatable)"
    )
    target.add_argument(
        "--variant",
        action="append",
        type=parse_variant,
        help="a server of its own with these settings, 'NAME: KEY=VALUE ...' (repeatable)",
    )
    parser.add_argument("--workers", type=int, choices=[1, 2], default=1, help="uvicorn workers per server")
    parser.add_argument("--clients", type=int, help="clients (default: steady 16, burst 250)")
    parser.add_argument("--photos-per-client", type=int, default=25, help="steady: photos each client posts")
    photos = parser.add_mutually_exclusive_group()
    photos.add_argument("--photos", type=Path, default=DATA, help="steady: every JPEG under this folder")
    photos.add_argument("--photo", type=Path, help="steady: send this one file instead")
    parser.add_argument("--faces", type=int, default=4, help="burst: people side by side in the photo (1-4)")
    parser.add_argument("--rounds", type=int, default=1, help="each variant's runs, alternated")
    parser.add_argument("--warm-up", type=int, default=40, help="photos sent to each server first")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if args.clients is not None and not 0 < args.clients <= 500:
        parser.error("keep it bounded: --clients 1..500")
    if not 0 < args.photos_per_client <= 1000 or not 0 < args.rounds <= 20:
        parser.error("keep it bounded: --photos-per-client 1..1000, --rounds 1..20")
    if not 1 <= args.faces <= 4:
        parser.error("--faces takes 1..4 (a face per person, each large enough to be found)")
    if any(urlparse(url).hostname not in LOOPBACK for url in args.url or []):
        parser.error("--url must be a loopback address (127.0.0.1, localhost, ::1)")
    if args.photo is not None and not args.photo.is_file():
        parser.error(f"--photo {args.photo}: no such file")
    if args.photo is None and not args.photos.is_dir():
        parser.error(f"--photos {args.photos}: no such folder (set HOBBIT_DATA or pass --photos)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scenarios = ["steady", "burst"] if args.scenario == "both" else [args.scenario]
    steady: list[Upload] = []
    if "steady" in scenarios and args.photo:
        steady = [upload(args.photo.name, args.photo.read_bytes())]
    elif "steady" in scenarios:
        steady = mixed_photos(args.photos)
    loads = Loads(steady, faces_photo(args.faces) if "burst" in scenarios else None)
    if args.url:
        variants = [Variant(url, url=url) for url in args.url]
    else:
        variants = args.variant or [Variant("defaults")]
    results = []
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as servers:
        targets = []
        for number, variant in enumerate(variants):
            if variant.url:
                url, pid = variant.url, listening_pid(variant.url)
            else:
                url, pid = servers.enter_context(
                    start_server(variant, args.workers, Path(tmp) / f"{number}.log")
                )
            warm_up(url, loads, args.warm_up)
            targets.append((variant, url, pid))
        for number in range(1, args.rounds + 1):
            for scenario in scenarios:
                for variant, url, pid in targets:
                    result = {"round": number, "variant": variant.name} | one_round(
                        scenario, url, pid, args, loads
                    )
                    results.append(result)
                    print(json.dumps(result), flush=True)
    machine: dict[str, Any] = {
        "cpu": cpu_summary(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }
    report = {
        "machine": machine,
        "versions": _versions(),
        "variants": [{"name": v.name, "env": v.env, "url": v.url} for v in variants],
        "photos": {"steady": [p.name for p in loads.steady], "burst": loads.burst and loads.burst.name},
        "rounds": results,
    }
    print(markdown(results))
    print(
        f"CPU: {machine['cpu']}, {machine['cpus']} cores; "
        f"load average at the end {machine['load_average_at_end']}"
    )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if any(r["errors"] for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
