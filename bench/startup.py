"""Start-up: seconds from ``python -m app serve`` to ``/readyz`` 200, and the CPU that took.

Run by hand, not in CI, on a quiet machine (start-up is mostly imports and loading, which
other work on the cores stretches):

    .venv/bin/python bench/startup.py --rounds 5
    .venv/bin/python bench/startup.py --rounds 5 --artifacts A --artifacts B   # alternated

Each round starts a fresh server on a free loopback port, polls ``/readyz`` every 20 ms,
and stops the server once it answers 200 (readiness includes loading and warming the
model). Several ``--artifacts`` folders are started in turn within each round, so a
before/after pair sees the same load. Prints one line per start and the medians.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from load import server_cpu  # bench/load.py, beside this script

from app.pipeline.numerics import cpu_summary
from harness.processes import ServerFailed, running_server


def start_to_ready(artifacts: Path | None, timeout: float) -> tuple[float, float]:
    """(wall seconds to /readyz 200, the server's CPU seconds by then) for one fresh server."""
    env = {"LOG_LEVEL": "WARNING"}
    if artifacts is not None:
        env["ARTIFACTS_DIR"] = str(artifacts.resolve())
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as folder:
        start = time.perf_counter()
        try:
            with running_server(Path(folder) / "server.log", env=env, timeout=timeout, poll_s=0.02) as base:
                return time.perf_counter() - start, server_cpu(base.pid)
        except ServerFailed as exc:
            raise SystemExit(f"error: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--artifacts", type=Path, action="append", help="an artifacts folder (repeat to alternate)"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="give up on a start after this long")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 50:
        parser.error("--rounds takes 1..50")
    folders: list[Path | None] = list(args.artifacts or [None])
    for folder in folders:
        if folder is not None and not folder.is_dir():
            parser.error(f"--artifacts {folder}: no such folder")
    results: dict[Path | None, list[tuple[float, float]]] = {folder: [] for folder in folders}
    for number in range(1, args.rounds + 1):
        for folder in folders:
            wall, cpu = start_to_ready(folder, args.timeout)
            results[folder].append((wall, cpu))
            print(
                f"round {number} {folder or 'default'}: ready {wall:.2f} s, CPU {cpu:.2f} s, "
                f"load {os.getloadavg()[0]:.1f}"
            )
    print(cpu_summary())
    for folder, runs in results.items():
        print(
            f"{folder or 'default'}: median ready {statistics.median(r[0] for r in runs):.2f} s, "
            f"CPU {statistics.median(r[1] for r in runs):.2f} s over {len(runs)} starts"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
