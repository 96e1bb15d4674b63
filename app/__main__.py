"""``python -m app serve`` runs the service; ``python -m app classify DIR --out FILE`` classifies a folder.

Both read the same settings from the environment (or ``.env``), so they use the same model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from app.config import get_settings
from app.logging_config import log_config
from app.shutdown import FORCE_BY


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the model over HTTP")
    serve.add_argument("--host", help="bind address (default: HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: PORT or 8000)")
    classify = commands.add_parser("classify", help="classify every image under a folder into a file")
    classify.add_argument("dir", type=Path, help="folder of images, searched recursively")
    classify.add_argument("--out", type=Path, required=True, help="results.jsonl or results.csv")
    args = parser.parse_args(argv)
    settings = get_settings()
    if args.command == "classify":
        # Imported here: serving never needs the batch module.
        from app import batch

        return batch.main(args.dir, args.out, settings)
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=settings.workers,
        log_config=log_config(settings.log_level),
        # A backstop after the app's own deadline (app/shutdown.py), for clients still uploading.
        timeout_graceful_shutdown=FORCE_BY * settings.shutdown_grace_s,
    )
    return 0


raise SystemExit(main())
