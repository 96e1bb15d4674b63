"""Run a Python snippet, or one of the project's commands, in a fresh interpreter from the project root.

For what a test process cannot show about itself: which modules a code path imports (pytest
has imported half the world already), a crash that would take pytest down with it, or what a
user sees when they run a command.
"""

from __future__ import annotations

import subprocess
import sys

from app.config import PROJECT_ROOT


def run_python(
    script: str, *args: str, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -c script args...`` (in ``env``, else this one); the output is captured as text,
    the exit code left to the caller."""
    return _run(["-c", script, *args], timeout, env)


def run_module(
    module: str, *args: str, timeout: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m module args...``, as ``run_python`` runs a snippet."""
    return _run(["-m", module, *args], timeout, env)


def _run(argv: list[str], timeout: float, env: dict[str, str] | None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
