"""``python -m app serve`` runs the service with the settings from the environment."""

from __future__ import annotations

import argparse

import uvicorn

from app.config import get_settings
from app.logging_config import log_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the model over HTTP")
    serve.add_argument("--host", help="bind address (default: HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: PORT or 8000)")
    args = parser.parse_args(argv)
    settings = get_settings()
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=settings.workers,
        log_config=log_config(settings.log_level),
    )
    return 0


raise SystemExit(main())
