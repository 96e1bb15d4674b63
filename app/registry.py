"""Registries of the pipeline's interchangeable parts: each name, what it is, and where its code is.

A name is what a manifest records and what settings and the CLI accept; the code is
imported only when a name is used, so listing the choices (``--help``, the settings'
validation, ``/v1/models``) never loads TensorFlow or an ONNX network.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class MissingExtra(RuntimeError):
    """A registered part whose optional packages are not installed; the message says how to add them."""


@dataclass(frozen=True)
class Entry:
    #: ``"package.module:attribute"``, imported on first use.
    target: str
    #: What the part really is, for people: shown in ``/v1/models`` and the docs.
    description: str
    #: How to install what the part imports, when that is optional (said if the import fails).
    install_hint: str | None = None


class Registry:
    """The named choices for one stage of the pipeline (or of training)."""

    def __init__(self, stage: str, entries: Mapping[str, Entry]) -> None:
        self.stage = stage
        self._entries = dict(entries)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def entry(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise ValueError(
                f"unknown {self.stage} {name!r}; choose one of {', '.join(self.names)}"
            ) from None

    def describe(self, name: str) -> str:
        return self.entry(name).description

    def load(self, name: str) -> Any:
        """The class or function registered under ``name``, imported now."""
        entry = self.entry(name)
        module, _, attribute = entry.target.partition(":")
        try:
            return getattr(importlib.import_module(module), attribute)
        except ImportError as exc:
            if entry.install_hint is None:
                raise
            raise MissingExtra(
                f"the {self.stage} {name!r} needs {exc.name or exc}: {entry.install_hint}"
            ) from exc
