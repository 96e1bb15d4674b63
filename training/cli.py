"""Command line: ``python -m training train --data DIR --backend svm --artifacts DIR``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from training.train import TrainConfig, train


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("train", help="train a new model version from <data>/<person>/<photos>")
    run.add_argument(
        "--data", type=Path, required=True, help="folder with one sub-folder of photos per person"
    )
    run.add_argument("--backend", choices=["svm", "cnn"], default="svm")
    run.add_argument(
        "--artifacts", type=Path, default=Path("artifacts"), help="artifacts root (default: artifacts)"
    )
    run.add_argument("--detector", choices=["haar", "blazeface"], default="blazeface")
    run.add_argument(
        "--features", choices=["wavelet", "facenet", "pixels"], default="facenet", help="default: facenet"
    )
    run.add_argument("--test-size", type=float, default=0.2, help="held-out fraction of photos (default 0.2)")
    run.add_argument("--seed", type=int, default=42, help="split and search seed (default 42)")
    run.add_argument("--version", help="version name (default: UTC timestamp)")
    run.add_argument("--max-per-class", type=int, help="use at most N photos per person (for smoke runs)")
    run.add_argument("--quick", action="store_true", help="tiny search spaces, for tests")
    run.add_argument("--max-trials", type=int, help="cnn: KerasTuner trials (default 20; --quick 2)")
    run.add_argument("--epochs", type=int, help="cnn: most epochs per trial (default 100; --quick 3)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    config = TrainConfig(
        data=args.data,
        artifacts=args.artifacts,
        backend=args.backend,
        detector=args.detector,
        features=args.features,
        test_size=args.test_size,
        seed=args.seed,
        version=args.version,
        max_per_class=args.max_per_class,
        quick=args.quick,
        max_trials=args.max_trials,
        epochs=args.epochs,
    )
    version_dir = train(config)
    print(version_dir)
    return 0
