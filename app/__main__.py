"""``python -m app serve`` runs the service; ``python -m app classify DIR --out FILE`` classifies a folder.

Both read the same settings from the environment (or ``.env``), so they use the same model.
"""

from __future__ import annotations

import math

import uvicorn
from pydantic import ValidationError

from app.batch.options import RayOptions, add_engine_arguments
from app.command_line import OneLineParser, port
from app.config import Settings, describe_invalid, get_settings
from app.service.logging_config import log_config
from app.service.shutdown import FORCE_BY


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m app")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the model over HTTP")
    serve.add_argument("--host", help="bind address (default: HOST or 127.0.0.1)")
    serve.add_argument("--port", type=port, help="port (default: PORT or 8000)")
    classify = commands.add_parser("classify", help="classify every image under a folder into a file")
    classify.add_argument("dir", help="folder of images, searched recursively (a URI with --engine ray)")
    classify.add_argument("--out", required=True, help="results.jsonl or results.csv (ray: also .parquet)")
    add_engine_arguments(classify)
    args = parser.parse_args(argv)
    try:
        settings = get_settings()
    except ValidationError as error:
        parser.exit(2, f"error: {describe_invalid(error, Settings)}\n")
    if args.command == "classify":
        # Imported here: serving never needs the engines.
        from app.batch import command

        return command.main(args.dir, args.out, settings, args.engine, RayOptions.from_arguments(args))
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=settings.workers,
        log_config=log_config(settings.log_level),
        # A backstop after the app's own deadline (app/service/shutdown.py), for clients still uploading.
        timeout_graceful_shutdown=math.ceil(FORCE_BY * settings.shutdown_grace_s),
    )
    return 0


raise SystemExit(main())
