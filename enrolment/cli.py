"""``python -m enrolment serve`` runs the trainer; ``import DIR`` enrols a folder of people.

Both read ``EnrolmentSettings`` (the environment or ``.env``). ``import`` works on the
store directly and builds once at the end: run it while the trainer is stopped (with
the trainer running, post a zip to ``/v1/people/bulk`` instead). Bad input is one line
on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from pathlib import Path

from pydantic import ValidationError

from app.command_line import OneLineParser, port
from app.config import describe_invalid
from app.labelled.folders import DatasetError
from enrolment.settings import EnrolmentSettings


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m enrolment", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the trainer service (enrolment API and people page)")
    serve.add_argument("--host", help="bind address (default: ENROL_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=port, help="port (default: ENROL_PORT or 8100)")
    enrol = commands.add_parser("import", help="enrol every person folder under DIR, then build a version")
    enrol.add_argument("dir", type=Path, help="one sub-folder of photos per person (classes.json optional)")
    commands.add_parser(
        "check", help="verify the store's rows against its files and every published version (after a crash)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = EnrolmentSettings()
    except ValidationError as exc:
        print(f"error: {describe_invalid(exc, EnrolmentSettings)}", file=sys.stderr)
        return 2
    if args.command == "serve":
        import uvicorn

        from app.service.logging_config import log_config
        from enrolment.api import create_enrolment_app

        logging_config = log_config(settings.log_level)
        for logger in ("training", "enrolment"):  # the builds' own lines, and training's under them
            logging_config["loggers"][logger] = {
                "handlers": ["stderr"],
                "level": settings.log_level,
                "propagate": False,
            }
        uvicorn.run(
            create_enrolment_app(settings),
            host=args.host or settings.host,
            port=args.port or settings.port,
            log_config=logging_config,
        )
        return 0
    if args.command == "check":
        return _check(settings)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        return _import(settings, args.dir)
    except DatasetError as exc:  # TrainingInputError included
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}", file=sys.stderr)
        return 2


def _check(settings: EnrolmentSettings) -> int:
    """Read-only: list the problems and exit 1, or exit 0. Unreferenced files are not problems
    (a crash leaves them; the trainer deletes them when it starts), but they are listed."""
    from enrolment.store import Store
    from enrolment.versions import check_published

    store = Store(settings.store_dir, settings.max_people)
    problems = check_published(settings) + store.check()
    for problem in problems:
        print(problem)
    for path in store.leftovers():
        print(f"leftover (removed at the next start): {path}")
    return 1 if problems else 0


def _import(settings: EnrolmentSettings, folder: Path) -> int:
    from enrolment.service import Enrolment, folder_files

    files, names = folder_files(folder)
    service = Enrolment(settings.model_copy(update={"max_photos_per_request": max(1, len(files))}))
    try:
        enrolled, change = service.enrol(files, names, wait=False)
        result = service.builder.build_once() if change.revision is not None else None
    finally:
        service.close()
    outcomes = Counter(e.outcome for e in enrolled)
    summary = {"files": len(files), "outcomes": dict(outcomes)}
    if result is not None:
        summary |= {"revision": result.revision, "version": result.version, "error": result.error}
    print(json.dumps(summary))
    return 0 if result is None or result.error is None else 1
