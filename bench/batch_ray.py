"""Throughput of the batch CLI's engines on this machine: local threads vs Ray actors.

    .venv/bin/python bench/batch_ray.py --photos 500 --layouts 2x1 --rounds 4 --profile 0
    .venv/bin/python bench/batch_ray.py --photos 500 --commands 3

Builds a folder of N photos by copying the shared photos round-robin under new names
(real photos at full size, so reading and decoding cost what they cost), then times,
in one process, after a local Ray cluster's start (``ray.init``, and a one-row dataset
that starts Ray Data's own actors; reported apart: a real cluster starts once, not per
job): ``--rounds`` rounds of the local engine and the Ray engine with each actors x
threads layout, in alternating order (local first, then Ray first...), since the machine
is shared and drifts; each round's ratio is to that round's local run, with the load
average at the start of each run. Every timing includes loading the model (the local
engine's load, the actors' loads and their process start), as a job pays it; the
process's one-time imports of scikit-learn and skops are paid before the rounds.
Then it profiles one thread over a sample of the photos stage by stage, to say what
limits throughput: reading, decoding or the model. Numbers go in docs/scaling.md.

On a shared machine the wall times are noisy; the CPU each run used is not. So every
run also reports the CPU seconds per photo of this process and of every process under
it (the local Ray cluster's daemons and workers), by role, read from ``/proc`` twice a
second (Linux only; a process that ends loses the CPU it used after its last sample).

In-process, the local engine starts with everything imported while each Ray actor pays its
own interpreter start and imports. ``--commands N`` times both engines as a person runs
them instead: N rounds of a fresh ``python -m app classify`` with each engine, back to
back in alternating order, so both pay their start; the Ray one joins a cluster started once beforehand
(``ray start --head``, timed apart, as a real cluster is).
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import ray
import ray.data

from app.batch import local, ray_engine
from app.batch.options import RayOptions
from app.batch.rows import is_image
from app.config import PROJECT_ROOT, Settings
from app.model.host import load_recognizer
from app.pipeline.numerics import cpu_summary

DATA = PROJECT_ROOT.parent / "shared" / "data" / "hobbits"
#: (actors, threads per actor) tried on the Ray engine by default.
LAYOUTS = "1x1,2x1,1x2"
#: A process's role in a run, by the first of these found in any title it had (Ray
#: retitles a worker after each task it runs); checked in this order.
ROLES = {
    "classifying actors": ("PhotoClassifier",),
    "writing tasks": ("Write",),
    "Ray Data's own actors": ("_StatsActor", "_AutoscalingCoordinatorActor", "ActorLocationTracker"),
    "idle workers": ("ray::",),
}
TICKS = os.sysconf("SC_CLK_TCK")


class CpuAccount:
    """CPU seconds used during a run by this process and every process under it, by role."""

    def __init__(self) -> None:
        self.start = self.sample()
        self.last = dict(self.start)
        self.titles: dict[int, set[str]] = {}
        self.done = threading.Event()
        self.sampler = threading.Thread(target=self.watch, daemon=True)
        self.sampler.start()

    @staticmethod
    def sample() -> dict[int, tuple[str, float]]:
        """pid -> (title, CPU seconds so far) for this process and its descendants."""
        parents, seen = {}, {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                title = (entry / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            except OSError:
                continue  # it ended while we looked
            fields = stat.rsplit(")", 1)[1].split()
            parents[int(entry.name)] = int(fields[1])
            seen[int(entry.name)] = (title, (int(fields[11]) + int(fields[12])) / TICKS)
        ours = {os.getpid()}
        while grown := {pid for pid, parent in parents.items() if parent in ours} - ours:
            ours |= grown
        return {pid: seen[pid] for pid in ours if pid in seen}

    def watch(self) -> None:
        while not self.done.wait(0.5):
            self.record(self.sample())

    def record(self, now: dict[int, tuple[str, float]]) -> None:
        for pid, (title, _) in now.items():
            self.titles.setdefault(pid, set()).add(title)
        self.last.update(now)

    def stop(self) -> dict[str, tuple[float, int]]:
        """Role -> (CPU seconds, processes) since the account was opened."""
        self.done.set()
        self.sampler.join()
        self.record(self.sample())
        roles: dict[str, tuple[float, int]] = {}
        for pid, (_, cpu) in self.last.items():
            used = cpu - self.start.get(pid, ("", 0.0))[1]
            if used > 0:
                role = self.role(pid)
                seconds, count = roles.get(role, (0.0, 0))
                roles[role] = (seconds + used, count + 1)
        return roles

    def role(self, pid: int) -> str:
        if pid == os.getpid():
            return "this process (driver, or the local engine)"
        titles = " ".join(self.titles.get(pid, ()))
        for role, marks in ROLES.items():
            if any(mark in titles for mark in marks):
                return role
        return "Ray's daemons (raylet, GCS, agents)"


def make_folder(data: Path, n: int, root: Path) -> Path:
    """``n`` photos copied round-robin from ``data`` (class folders kept, names made unique)."""
    sources = sorted(p for p in data.rglob("*") if p.is_file() and is_image(p))
    folder = root / "photos"
    for index in range(n):
        source = sources[index % len(sources)]
        target = folder / source.parent.name / f"{index:05d}-{source.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    return folder


def timed(label: str, n: int, run: Callable[[], object], cpu: dict[str, str]) -> float:
    """Photos per second of one run; its CPU by role goes into ``cpu`` as a line of text."""
    account = CpuAccount()
    start = time.perf_counter()
    run()
    seconds = time.perf_counter() - start
    roles = account.stop()
    print(f"| {label} | {seconds:.1f} s | {n / seconds:.2f} |", flush=True)
    total = sum(used for used, _ in roles.values())
    parts = [
        f"{role} {used / n * 1000:.0f} ({count} processes)"
        for role, (used, count) in sorted(roles.items(), key=lambda item: -item[1][0])
        if used / n >= 0.0005
    ]
    cpu[label] = f"{total / n * 1000:.0f} ms of CPU per photo: " + ", ".join(parts)
    return n / seconds


def profile(folder: Path, settings: Settings, sample: int) -> None:
    """Mean seconds per photo of each stage, on one thread: what a core spends its time on."""
    cv2.setNumThreads(1)  # one core, as a Ray actor with one CPU runs it
    recognizer = load_recognizer(settings.model_copy(update={"inference_threads": 1}))
    stages: dict[str, list[float]] = {}
    for path in sorted(folder.rglob("*.*"))[:sample]:
        start = time.perf_counter()
        data = path.read_bytes()
        read = time.perf_counter()
        result = recognizer.recognize_bytes(data, settings.max_pixels)
        for name, seconds in {"read": read - start, **result.timings}.items():
            stages.setdefault(name, []).append(seconds)
    total = sum(sum(v) for v in stages.values()) / sample
    print(f"\nstages on one thread, mean over {sample} photos ({total * 1000:.0f} ms per photo):\n")
    print("| stage | ms per photo | share |\n|---|---|---|")
    for name, values in stages.items():
        mean = sum(values) / sample  # a stage that did not run (no face) counts as 0 for that photo
        print(f"| {name} | {mean * 1000:.1f} | {mean / total:.0%} |")


def commands(folder: Path, root: Path, rounds: int, backend: str) -> None:
    """Wall time of each engine as a fresh command, interleaved; Ray joins a running cluster."""
    env = {**os.environ, "CLASSIFIER_BACKEND": backend, "RAY_ADDRESS": "auto"}
    ray_cli = str(Path(sys.executable).with_name("ray"))
    head = ["--head", "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats"]
    start = time.perf_counter()
    subprocess.run(
        [ray_cli, "start", *head],
        check=True,
        capture_output=True,
        env=env,
    )
    print(f"\n(ray start --head: {time.perf_counter() - start:.1f} s, once per cluster)\n")
    print("| round | load average | local command | ray command | ratio |\n|---|---|---|---|---|")
    n = sum(1 for p in folder.rglob("*") if p.is_file())
    ratios = []
    try:
        for index in range(rounds):
            seconds = {}
            load = os.getloadavg()[0]
            engines = [("local", f"c{index}.jsonl"), ("ray", f"c{index}.parquet")]
            for engine, out in engines if index % 2 == 0 else engines[::-1]:  # alternating order
                cli = [sys.executable, "-m", "app", "classify", str(folder), "--out", str(root / out)]
                cli += ["--engine", "ray", "--ray-address", "auto"] if engine == "ray" else []
                began = time.perf_counter()
                subprocess.run(cli, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                seconds[engine] = time.perf_counter() - began
            ratios.append(seconds["local"] / seconds["ray"])
            print(
                f"| {index + 1} | {load:.1f} | {seconds['local']:.1f} s, {n / seconds['local']:.2f} photos/s "
                f"| {seconds['ray']:.1f} s, {n / seconds['ray']:.2f} photos/s | {ratios[-1]:.2f}x |",
                flush=True,
            )
    finally:
        subprocess.run([ray_cli, "stop", "--force"], check=False, capture_output=True)
    mean = statistics.mean(ratios)
    print(f"\nray command against the local command: {mean:.2f}x (mean of {rounds} rounds)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=500)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--backend", default="svm")
    parser.add_argument("--layouts", default=LAYOUTS, help="Ray layouts to time, as ACTORSxTHREADS,...")
    parser.add_argument("--profile", type=int, default=100, help="photos in the per-stage profile (0: none)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="interleaved rounds of the local engine and each layout"
    )
    parser.add_argument(
        "--commands", type=int, default=0, help="time N rounds of both engines as fresh commands instead"
    )
    args = parser.parse_args()
    settings = Settings(_env_file=None, classifier_backend=args.backend)
    local.share_cores(settings)  # as `python -m app classify` does for the local engine
    n = args.photos
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        root = Path(tmp)
        folder = make_folder(args.data, n, root)
        print(f"{n} photos, {args.backend}, {settings.inference_threads} local threads; {cpu_summary()}\n")
        if args.commands:
            commands(folder, root, args.commands, args.backend)
            return 0
        print("| round | run | load average | wall time | photos/s |\n|---|---|---|---|---|")
        cpu: dict[str, str] = {}
        start = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
        ray.data.range(1).materialize()  # Ray Data's own actors start with a cluster's first dataset
        print(
            f"| | (cluster start, once per cluster) | | {time.perf_counter() - start:.1f} s | |", flush=True
        )
        layouts = [tuple(int(x) for x in layout.split("x")) for layout in args.layouts.split(",")]

        def on_local(out: Path) -> object:
            return local.classify_folder(folder, out.with_suffix(".jsonl"), settings)

        def on_ray(options: RayOptions, out: Path) -> object:
            return ray_engine.classify_store(str(folder), str(out.with_suffix(".parquet")), settings, options)

        runs: dict[str, Callable[[Path], object]] = {"local engine": on_local}
        for actors, threads in layouts:
            options = RayOptions(actors=actors, threads_per_actor=threads)
            runs[f"ray, {actors} actor(s) x {threads} thread(s)"] = functools.partial(on_ray, options)
        # The first load's imports are this process's, once: not a round's.
        load_recognizer(settings)
        ratios: dict[str, list[float]] = {label: [] for label in runs if label != "local engine"}
        for index in range(args.rounds):
            # Alternate the order (local first, then Ray first...): the machine drifts.
            order = list(runs) if index % 2 == 0 else list(runs)[::-1]
            rates: dict[str, float] = {}
            for label in order:
                out = root / f"r{index}-{len(rates)}"
                load = os.getloadavg()[0]
                rates[label] = timed(
                    f"{index + 1} | {label} | {load:.1f}", n, functools.partial(runs[label], out), cpu
                )
            for label, values in ratios.items():
                values.append(rates[label] / rates["local engine"])
            print(
                "| | ratios: "
                + ", ".join(f"{label.removeprefix('ray, ')} {r[-1]:.2f}x" for label, r in ratios.items())
                + " | | | |",
                flush=True,
            )
        ray.shutdown()
        print()
        for label, values in ratios.items():
            shown = ", ".join(f"{v:.2f}" for v in values)
            print(f"{label}: {statistics.mean(values):.2f}x the local engine (rounds: {shown})")
        print("\nCPU used, by process role (ms per photo):")
        for label, line in cpu.items():
            print(f"- {label}: {line}")
        if args.profile:
            profile(folder, settings, min(args.profile, n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
