"""What the three command lines (``python -m app``, ``training``, ``enrolment``) share.

Bad input to a command is one line on stderr and exit status 2, never a usage dump or a
traceback: argparse's own errors go through ``OneLineParser``, and the argument types
here say what is wrong with a value in words.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from app.config import PORTS


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def positive(text: str) -> int:
    """A whole number of at least 1."""
    value = whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def port(text: str) -> int:
    """A TCP port a service may listen on (``app.config.PORTS``), as the PORT setting is checked."""
    value = whole_number(text)
    if value not in PORTS:
        raise argparse.ArgumentTypeError(f"{value} is not a port ({PORTS.start} to {PORTS.stop - 1})")
    return value
