"""How a batch command is asked to run: which engine, and for Ray, how the work is spread.

Kept apart from the engines so that a command line can declare and read these options
without importing Ray (an optional extra) or the model code.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Literal, get_args

from app.command_line import positive

#: ``local``: threads on this machine (``app.batch.local``); ``ray``: a Ray cluster
#: (``app.batch.ray_engine``).
EngineName = Literal["local", "ray"]
ENGINES: tuple[EngineName, ...] = get_args(EngineName)


@dataclass(frozen=True)
class RayOptions:
    """How the work is spread: the cluster to join, how many actors, and threads in each.

    One thread per actor, one actor per CPU, is the default: with OpenCV held to the
    actor's CPUs, one actor of two threads and two actors of one measured the same
    (docs/scaling.md), and actors share no GIL or network pool, so a killed actor costs
    one core's batch.
    """

    #: ``auto``, ``ray://host:10001`` or a GCS address; None starts a local cluster
    #: (or joins the one ``RAY_ADDRESS`` names).
    address: str | None = None
    #: None: one actor per ``threads_per_actor`` CPUs of the cluster.
    actors: int | None = None
    threads_per_actor: int = 1
    #: The most photos in a batch handed to an actor, and so in one part file; the last
    #: batches of a job are smaller (``app.batch.ray_engine.batch_sizes``).
    batch_size: int = 16

    @classmethod
    def from_arguments(cls, args: argparse.Namespace) -> RayOptions:
        """The options ``add_engine_arguments`` declared, as the command line gave them."""
        return cls(args.address, args.actors, args.threads_per_actor, args.batch_size)


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """``--engine`` and the Ray options, for any command that runs on the batch engines."""
    defaults = RayOptions()
    parser.add_argument("--engine", choices=ENGINES, default="local", help="threads here, or Ray")
    ray = parser.add_argument_group("--engine ray (see docs/scaling.md)")
    ray.add_argument("--ray-address", dest="address", help="cluster to join (default: start one)")
    ray.add_argument("--actors", type=positive, help="model actors (default: one per CPU)")
    ray.add_argument(
        "--threads-per-actor",
        type=positive,
        default=defaults.threads_per_actor,
        help="photos at once per actor",
    )
    ray.add_argument(
        "--batch-size", type=positive, default=defaults.batch_size, help="most photos per batch and part file"
    )
