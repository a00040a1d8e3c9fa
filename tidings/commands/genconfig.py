"""`tidings genconfig`: a commented starting configuration with fresh secrets.

The file it writes is accepted as is by `tidings check --config` and `tidings serve
--config`: JWT auth on (a new HS256 secret), a new API key, every other setting at its
default and explained. Written with mode 0600, since it holds secrets; an existing file is
never overwritten without --force.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from pathlib import Path

TEMPLATE = """\
# Tidings settings: `tidings serve --config {path}`.
# Every TIDINGS_<NAME> environment variable overrides the setting <name> here, so one file
# can serve a whole cluster while each node sets TIDINGS_NODE_NAME (and TIDINGS_PORT).
# Check it, and reach the store and broker it names: `tidings check --config {path}`.
# Reference: docs/configuration.md.

# Where clients and backends reach this node. Any address but loopback needs JWT auth (set
# below); behind a load balancer on another host, listen on "0.0.0.0".
host = {host}
port = {port}
# node_name = "gw-1"          # unique in a cluster; default: <hostname>-<6 random hex>

# History (SQLite file, or postgresql://user:pass@host:5432/db for a cluster) and the broker
# joining the nodes (memory:// is one node only; redis://, amqp:// or nats:// for several).
store = {store}
broker = {broker}

# JWT auth: your backend signs each client's token (sub = the user id, exp required) with
# this HS256 secret. Generated for this file: keep it secret. Or give an RS256/ES256 public
# key instead: jwt_public_key = "/etc/tidings/jwt.pem".
jwt_secret = {jwt_secret}

# The server API (/api/...) key: backends send `Authorization: apikey <key>`.
# Generated for this file: keep it secret.
api_key = {api_key}

# The admin console at /admin: off while this line stays a comment. Its own token, made
# for this file; open the console on each node's own port, not through the balancer.
# admin_token = {admin_token}

# Log lines: "text" for people, "json" (one object a line) or "kv" (logfmt) for machines.
log_format = "text"

# Heartbeats and limits (seconds and bytes; these are the defaults).
# ping_interval = 25          # client silence before the node pings
# pong_timeout = 10           # then this long to answer, else close 4005
# connect_timeout = 10        # from opening the socket to `connect`, else close 4500
# max_frame_bytes = 65536     # a larger client frame closes with 1009
# max_outgoing_bytes = 4194304  # unsent bytes before a slow consumer is closed (4004)
# cluster_ttl = 15            # a silent node and its presence expire after this
# shutdown_grace = 5          # on SIGTERM, time for clients to leave (keep it below the
#                             # orchestrator's kill timeout)

# Namespaces: channels are <namespace>:<name>. The built-ins are user, room, broadcast and
# voice; change an option of one, or add your own:
# [namespaces.room]
# history_size = 1000         # publications kept per channel; 0 = ephemeral
# history_ttl = 604800        # seconds kept; 0 = until history_size pushes them out
#
# [namespaces.alerts]         # alerts:<name>, published by the server API only
# publish = "server"
# history_size = 200
"""


def add_to(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "genconfig", help="write a commented starting configuration with fresh secrets",
        description="Write a TOML configuration with a new JWT secret and API key. Exit 0: "
                    "written; 2: the file exists (use --force) or cannot be written.")
    parser.add_argument("-o", "--output", help="file to write (default: standard output)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--store", default="sqlite:///tidings.db", help="store URL")
    parser.add_argument("--broker", default="memory://", help="broker URL")
    parser.set_defaults(run=run)


def render(*, path: str, host: str, port: int, store: str, broker: str) -> str:
    """The configuration text, with secrets made now."""
    return TEMPLATE.format(
        path=path, host=_toml(host), port=port, store=_toml(store), broker=_toml(broker),
        jwt_secret=_toml(secrets.token_urlsafe(32)), api_key=_toml(secrets.token_urlsafe(32)),
        admin_token=_toml(secrets.token_urlsafe(32)),
    )


def _toml(value: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(value)


def run(args: argparse.Namespace) -> int:
    text = render(path=args.output or "tidings.toml", host=args.host, port=args.port,
                  store=args.store, broker=args.broker)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    path = Path(args.output)
    if path.exists() and not args.force:
        print(f"genconfig: {path} exists; use --force to overwrite it", file=sys.stderr)
        return 2
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(path, 0o600)
    except OSError as exc:
        print(f"genconfig: cannot write {path}: {exc.strerror}", file=sys.stderr)
        return 2
    print(f"genconfig: wrote {path} (mode 0600: it holds the JWT secret and the API key)",
          file=sys.stderr)
    return 0
