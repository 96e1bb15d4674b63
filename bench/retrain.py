"""Retraining with a warm embedding cache against a cold one: the shared photos plus one new person.

Run by hand (not in CI):

    .venv/bin/python bench/retrain.py

The folder is the 199 shared photos (linked, not copied) plus a sixth "new person"
with 5 photos. There is no sixth actor in the shared photos, so the new person's
photos are 5 of sean_astin's, mirrored and re-encoded: new bytes, so the cache has
never seen them, which is all that matters for the time (the model they make is
not the point here). Cold: an empty cache. Warm: a cache filled by training on the
199 photos before the new person was added, as after an earlier run.

Two ways, both timed: the command (``python -m training train``, a fresh process
each time: imports and model loading included), and in-process (``train()`` called
in one process that has imported and loaded everything once, as a service that
enrols people would). Times are wall clock and, for the command, CPU (user + sys
of the child), which shifts less on a busy machine.

Cold and warm runs are interleaved (``--repeats`` pairs, the order alternating), each
warm run on its own copy of the earlier cache, and the medians are reported with the
load average seen around each pair: above 2 on this 2-core machine, label the figures busy.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median

from PIL import Image, ImageOps

from app.pipeline.numerics import cpu_summary
from training.train import TrainConfig, train

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "hobbits"
NEW_PERSON = "new_person"


def make_folders(data: Path, work: Path) -> tuple[Path, Path]:
    """``before``: the shared folders; ``after``: the same plus the new person's 5 photos."""
    before, after = work / "before", work / "after"
    for folder in (before, after):
        folder.mkdir()
        for person in sorted(p for p in data.iterdir() if p.is_dir()):
            (folder / person.name).symlink_to(person.resolve(), target_is_directory=True)
    (after / NEW_PERSON).mkdir()
    for i, photo in enumerate(sorted((data / "sean_astin").glob("*.jpg"))[-5:]):
        ImageOps.mirror(Image.open(photo).convert("RGB")).save(
            after / NEW_PERSON / f"new {i}.jpg", quality=92
        )
    return before, after


def run_command(data: Path, artifacts: Path, cache: Path, version: str) -> tuple[float, float]:
    """Wall and CPU seconds of one ``python -m training train`` process."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    command = [sys.executable, "-m", "training", "train", "--data", str(data), "--artifacts", str(artifacts)]
    subprocess.run(
        [*command, "--cache-dir", str(cache), "--version", version],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)


def run_in_process(data: Path, artifacts: Path, cache: Path, version: str) -> tuple[float, float]:
    """Wall and CPU seconds (every thread of this process) of one ``train()`` call."""
    start, cpu = time.perf_counter(), time.process_time()
    train(TrainConfig(data=data, artifacts=artifacts, cache_dir=cache, version=version))
    return time.perf_counter() - start, time.process_time() - cpu


Run = Callable[[Path, Path, Path, str], tuple[float, float]]


def interleaved(run: Run, name: str, repeats: int, folders: tuple[Path, Path, Path], loads: list[float]):
    """``repeats`` cold/warm pairs of ``run``, alternating which goes first; each warm on a fresh copy."""
    after, artifacts, earlier = folders
    times: dict[str, list[tuple[float, float]]] = {"cold": [], "warm": []}
    for r in range(repeats):
        for kind in ("cold", "warm") if r % 2 == 0 else ("warm", "cold"):
            cache = artifacts.parent / f"{name}-{kind}-{r}"
            if kind == "warm":
                shutil.copytree(earlier, cache)
            times[kind].append(run(after, artifacts, cache, cache.name))
            print(f"{name} {kind}: {times[kind][-1][0]:.1f} s wall", flush=True)
        loads.append(os.getloadavg()[0])
    return {
        kind: (median(w for w, _ in runs), median(c for _, c in runs)) for kind, runs in times.items()
    }, times


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--repeats", type=int, default=3, help="cold/warm pairs per way (default 3)")
    args = parser.parse_args()
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        before, after = make_folders(args.data, work)
        artifacts, earlier = work / "artifacts", work / "earlier"
        run_command(before, artifacts, earlier, "earlier")  # the cache as an earlier run left it
        folders = (after, artifacts, earlier)
        command, runs = interleaved(run_command, "command", args.repeats, folders, loads)
        # Imports are done; each train() still builds its detector and embedder, as the command does.
        in_process, _ = interleaved(run_in_process, "in-process", args.repeats, folders, loads)
    cold, warm = command["cold"], command["warm"]
    cold_in, warm_in = in_process["cold"][0], in_process["warm"][0]
    print(
        f"{cpu_summary()}; medians of {args.repeats} interleaved pairs; "
        f"load average {min(loads):.1f}-{max(loads):.1f}"
    )
    print("| how | cold | warm | warm / cold |")
    print("|---|---|---|---|")
    print(
        f"| `python -m training train`, wall (CPU) | {cold[0]:.1f} s ({cold[1]:.1f} s) "
        f"| {warm[0]:.1f} s ({warm[1]:.1f} s) | {warm[0] / cold[0]:.0%} ({warm[1] / cold[1]:.0%}) |"
    )
    print(f"| `train()` in-process, wall | {cold_in:.1f} s | {warm_in:.1f} s | {warm_in / cold_in:.0%} |")
    for kind in ("cold", "warm"):
        each = ", ".join(f"{w:.1f} ({c:.1f})" for w, c in runs[kind])
        print(f"command {kind}, each run, wall (CPU) s: {each}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
