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
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageOps

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


def run_in_process(data: Path, artifacts: Path, cache: Path, version: str) -> float:
    start = time.perf_counter()
    train(TrainConfig(data=data, artifacts=artifacts, cache_dir=cache, version=version))
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        before, after = make_folders(args.data, work)
        artifacts, earlier = work / "artifacts", work / "earlier"
        run_command(before, artifacts, earlier, "earlier")  # the cache as an earlier run left it
        shutil.copytree(earlier, work / "in-process-warm")
        cold = run_command(after, artifacts, work / "command-cold", "command-cold")
        warm = run_command(after, artifacts, earlier, "command-warm")
        # Imports are done; each train() still builds its detector and embedder, as the command does.
        cold_in = run_in_process(after, artifacts, work / "in-process-cold", "in-process-cold")
        warm_in = run_in_process(after, artifacts, work / "in-process-warm", "in-process-warm")
    print("| how | cold | warm | warm / cold |")
    print("|---|---|---|---|")
    print(
        f"| `python -m training train`, wall (CPU) | {cold[0]:.1f} s ({cold[1]:.1f} s) "
        f"| {warm[0]:.1f} s ({warm[1]:.1f} s) | {warm[0] / cold[0]:.0%} ({warm[1] / cold[1]:.0%}) |"
    )
    print(f"| `train()` in-process, wall | {cold_in:.1f} s | {warm_in:.1f} s | {warm_in / cold_in:.0%} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
