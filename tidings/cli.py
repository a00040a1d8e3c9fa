"""The `tidings` command."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from tidings import __version__
from tidings.auth import check_exposure
from tidings.commands import COMMANDS
from tidings.config import ConfigError, Settings, load_settings
from tidings.logs import configure_logging
from tidings.workers import check_workers, supervise


SWITCH_INTERVAL = 0.0005


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tidings", description="A real-time messaging gateway.")
    parser.add_argument("--version", action="version", version=f"tidings {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run a node")
    serve.add_argument("--config", help="TOML settings file (TIDINGS_* variables override it)")
    serve.add_argument("--host", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default 8000)")
    serve.add_argument("--workers", type=int, default=1,
                       help="node processes sharing the port (needs a shared broker)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    for command in COMMANDS:
        command.add_to(commands)
    args = parser.parse_args(argv)
    if args.command != "serve":
        return args.run(args)

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        settings = load_settings(args.config, **overrides)
        configure_logging(args.log_level, settings.log_format, settings.node_name)
        check_exposure(settings)
        check_workers(settings, args.workers)
    except ConfigError as exc:
        print(f"tidings: {exc}", file=sys.stderr)
        return 2
    if args.workers > 1:
        raw = argv if argv is not None else sys.argv[1:]
        child_argv = _without_workers(raw[raw.index("serve") + 1:])
        return supervise(settings, args.workers, child_argv)
    return run(settings, reuse_port=os.environ.get("TIDINGS_REUSE_PORT") == "1")


def _without_workers(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            out.append(arg)
    return out


def run(settings: Settings, *, reuse_port: bool = False) -> int:
    from tidings.broker import BrokerError
    from tidings.node import Node
    from tidings.server.app import serve
    from tidings.store import StoreError

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    # The store's writer thread must get the GIL back quickly after each commit: with the
    # default 5 ms switch interval a busy event loop makes every batch wait that long.
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        asyncio.run(serve(Node(settings), reuse_port=reuse_port))
    except (ValueError, ConfigError) as exc:  # an unknown store or broker URL, a bad key file
        print(f"tidings: {exc}", file=sys.stderr)
        return 2
    except (BrokerError, StoreError) as exc:  # unreachable at start, a newer schema
        print(f"tidings: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"tidings: cannot listen on {settings.host}:{settings.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
