"""Command line: ``python -m training train --data DIR --backend svm --artifacts DIR``.

Bad input (a folder that cannot train a model, an option out of range) is one
line on stderr and exit status 2, never a traceback.

A fresh process spends a good part of a warm retrain importing scikit-learn (with SciPy and
skops) and loading the two networks. Both happen in threads while the main thread reads the
embedding cache and detects the new photos: ONNX Runtime releases the GIL while it builds a
session and while it runs, so on two cores the work overlaps. The imports start only after
the main thread has imported ``training.train`` (which does not import scikit-learn), and
``train`` waits for them before anything of its own imports scikit-learn: two threads
importing the same modules at once can deadlock.

Python's cyclic garbage collector is kept out of the way of those imports: each full
collection walks every object the imported libraries made, over and over. It is off while
the imports run; then the imported objects are frozen (never walked again) and it is back
on for the photos; ``python -m training`` freezes everything before the process exits
(docs/benchmarks.md, "Retraining warm: the garbage collector").
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from app.command_line import OneLineParser, positive
from app.labelled.folders import DatasetError
from app.pipeline.detect import DETECTORS
from app.pipeline.detect.blazeface import SMALL_FACE_SEARCHES
from app.pipeline.features import FEATURES
from app.registry import MissingExtra
from training.cache import default_cache_dir
from training.fitting import TRAINERS
from training.run_config import DEFAULT_DETECTOR, DEFAULT_FEATURES, DEFAULT_SMALL_FACES, Stages, TrainConfig


def _test_size(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 0.5:
        raise argparse.ArgumentTypeError(f"{value} is outside 0..0.5 (0 trains on every photo)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m training", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("train", help="train a new model version from <data>/<person>/<photos>")
    run.add_argument(
        "--data", type=Path, required=True, help="folder with one sub-folder of photos per person"
    )
    run.add_argument("--backend", choices=TRAINERS.names, default="svm")
    run.add_argument(
        "--artifacts", type=Path, default=Path("artifacts"), help="artifacts root (default: artifacts)"
    )
    run.add_argument("--detector", choices=DETECTORS.names, default=DEFAULT_DETECTOR)
    run.add_argument(
        "--small-faces",
        choices=SMALL_FACE_SEARCHES,
        default=DEFAULT_SMALL_FACES,
        help="how the default detector searches photos over 427 px: centerface finds faces down to "
        "20 px; tiles, the search of models trained before it (1024 px working image), cost less CPU "
        f"on large photos (default: {DEFAULT_SMALL_FACES})",
    )
    run.add_argument(
        "--features", choices=FEATURES.names, default=DEFAULT_FEATURES, help=f"default: {DEFAULT_FEATURES}"
    )
    run.add_argument(
        "--test-size",
        type=_test_size,
        default=0.2,
        help="held-out fraction of photos, 0..0.5 (default 0.2; 0: train on all, no held-out figure)",
    )
    run.add_argument("--seed", type=int, default=42, help="split and search seed (default 42)")
    run.add_argument("--version", help="version name (default: UTC timestamp)")
    run.add_argument(
        "--max-per-class", type=positive, help="use at most N photos per person (for smoke runs)"
    )
    run.add_argument("--quick", action="store_true", help="tiny search spaces, for tests")
    run.add_argument("--max-trials", type=positive, help="cnn: KerasTuner trials (default 20; --quick 2)")
    run.add_argument("--epochs", type=positive, help="cnn: most epochs per trial (default 100; --quick 3)")
    run.add_argument(
        "--cache-dir",
        type=Path,
        default=default_cache_dir(),
        help=f"embedding cache: photos seen before are not detected again (default {default_cache_dir()})",
    )
    run.add_argument("--no-cache", action="store_true", help="detect and embed every photo afresh")
    return parser


def import_model_search(backend: str) -> None:
    """Import what fitting and scoring will need: scikit-learn's metrics and split, and the backend's search.

    A failure is left alone here: the main thread imports the same module when it fits, and
    reports the error there as it always has (a missing extra is one line with its install hint).
    The garbage collector is off meanwhile, for the whole process (see the module's docstring).
    """
    gc.disable()
    try:
        with contextlib.suppress(Exception):
            import sklearn.metrics
            import sklearn.model_selection  # noqa: F401

            TRAINERS.load(backend)
    finally:
        gc.freeze()  # what was imported stays for the whole run: later collections skip it
        gc.enable()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    config = TrainConfig(
        data=args.data,
        artifacts=args.artifacts,
        backend=args.backend,
        detector=args.detector,
        small_faces=args.small_faces,
        features=args.features,
        test_size=args.test_size,
        seed=args.seed,
        version=args.version,
        max_per_class=args.max_per_class,
        quick=args.quick,
        max_trials=args.max_trials,
        epochs=args.epochs,
        cache_dir=None if args.no_cache else args.cache_dir,
    )
    loading = ThreadPoolExecutor(2, thread_name_prefix="load")
    try:
        stages = loading.submit(Stages.create, config)
        from training.train import train  # light: scikit-learn is imported by the next thread

        model_search = loading.submit(import_model_search, config.backend)
        version_dir = train(config, stages.result, model_search.result)
    except (DatasetError, MissingExtra) as exc:  # TrainingInputError included
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. an artifacts or cache folder that cannot be written
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}", file=sys.stderr)
        return 2
    finally:
        loading.shutdown(wait=False)
    print(version_dir)
    return 0
