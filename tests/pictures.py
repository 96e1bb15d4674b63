"""Where tests write the pictures the docs show.

A plain test run writes them to ``test-output/``, so it leaves the checkout as it found it;
``UPDATE_DOCS_PICTURES=1`` writes them to ``docs/`` instead, to refresh the docs' pictures
on purpose (see the README's "Development" section).
"""

from __future__ import annotations

import os
from pathlib import Path

from app.config import PROJECT_ROOT

OUTPUT = PROJECT_ROOT / "test-output"


def docs_picture(name: str) -> Path:
    """The path a test saves the docs' picture ``name`` to, its folder made."""
    folder = PROJECT_ROOT / "docs" if os.environ.get("UPDATE_DOCS_PICTURES") == "1" else OUTPUT
    folder.mkdir(exist_ok=True)
    return folder / name
