"""Run a Python snippet in a fresh interpreter from the project root.

For what a test process cannot show about itself: which modules a code path imports (pytest
has imported half the world already), or a crash that would take pytest down with it.
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
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
