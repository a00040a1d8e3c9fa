"""The `tidings` command."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from tidings import __version__
from tidings.auth import check_exposure
from tidings.config import ConfigError, Settings, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tidings", description="A real-time messaging gateway.")
    parser.add_argument("--version", action="version", version=f"tidings {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run a node")
    serve.add_argument("--config", help="TOML settings file (TIDINGS_* variables override it)")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default 8000)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)

    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        settings = load_settings(args.config, **overrides)
        check_exposure(settings)
    except ConfigError as exc:
        print(f"tidings: {exc}", file=sys.stderr)
        return 2
    return run(settings)


def run(settings: Settings) -> int:
    from tidings.node import Node
    from tidings.server.app import serve

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(serve(Node(settings)))
    except ValueError as exc:  # an unknown store or broker URL
        print(f"tidings: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"tidings: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
