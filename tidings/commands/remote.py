"""`tidings publish|send|broadcast|history|presence|inbox|info|disconnect`: the server API
from a shell, for scripts and debugging, built on tidings.client.ApiClient.

The node is `--url` (or TIDINGS_URL, default http://127.0.0.1:8000) and the key `--api-key`
(or TIDINGS_API_KEY, the same variable a node reads its key from). Output is for people;
`--json` prints the result as one JSON object instead.

Exit status: 0 done, 1 the node answered with an error (its code and message are printed),
2 bad arguments, 3 the node did not answer.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from tidings.client import ApiClient, ApiError, Unreachable
from tidings.client.api import DEFAULT_URL
from tidings.client.types import HistoryPage, Info, Presence, Published

OK, ANSWERED_ERROR, BAD_ARGUMENTS, UNREACHABLE = 0, 1, 2, 3

Call = Callable[[ApiClient, argparse.Namespace], Awaitable[Any]]


class BadArgument(Exception):
    pass


def add_to(subcommands: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("TIDINGS_URL", DEFAULT_URL),
                        help="the node (default $TIDINGS_URL or http://127.0.0.1:8000)")
    common.add_argument("--api-key", default=os.environ.get("TIDINGS_API_KEY"),
                        help="server API key (default $TIDINGS_API_KEY)")
    common.add_argument("--json", action="store_true", help="print the result as JSON")
    common.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")

    def command(name: str, help: str, call: Call, show: Callable[[Any], str]):
        parser = subcommands.add_parser(name, help=help, parents=[common], description=help)
        parser.set_defaults(run=lambda args: run(args, call, show))
        return parser

    for name, help, call in (
        ("publish", "publish to a channel", _publish),
        ("send", "send a direct message to a user", _send),
        ("broadcast", "publish to every connection", _broadcast),
    ):
        parser = command(name, help, call, _show_published)
        if name == "publish":
            parser.add_argument("channel")
        elif name == "send":
            parser.add_argument("user")
        parser.add_argument("data", help="JSON value, or - to read it from standard input")
        parser.add_argument("--source", help="the originating system, shown to clients")

    parser = command("history", "a page of a channel's history", _history, _show_history)
    parser.add_argument("channel")
    parser.add_argument("--limit", type=int, help="1 to 1000 (default 100)")
    parser.add_argument("--since", type=int, help="exclusive offset cursor")
    parser.add_argument("--reverse", action="store_true", help="newest first")

    parser = command("presence", "who is in a channel, cluster-wide", _presence, _show_presence)
    parser.add_argument("channel")

    parser = command("inbox", "a user's message center", _inbox, _show_json)
    parser.add_argument("user")
    parser.add_argument("--source", help="one source only")
    parser.add_argument("--limit", type=int, help="messages per source")

    command("info", "this node and every live node", _info, _show_info)

    parser = command("disconnect", "close a user's connections, cluster-wide", _disconnect,
                     lambda d: f"{d.user}: {d.closed_here} connection(s) closed on this node; "
                               "the other nodes were told")
    parser.add_argument("user")
    parser.add_argument("--client", help="only the connection with this id")
    parser.add_argument("--no-reconnect", action="store_true",
                        help="tell the clients not to reconnect (4502 instead of 4007)")


def run(args: argparse.Namespace, call: Call, show: Callable[[Any], str]) -> int:
    try:
        result = asyncio.run(_with_client(args, call))
    except BadArgument as exc:
        print(f"tidings {args.command}: {exc}", file=sys.stderr)
        return BAD_ARGUMENTS
    except ApiError as exc:
        print(f"tidings {args.command}: error {exc.code} (HTTP {exc.status}): {exc.message}",
              file=sys.stderr)
        return ANSWERED_ERROR
    except Unreachable as exc:
        print(f"tidings {args.command}: {exc}", file=sys.stderr)
        return UNREACHABLE
    if args.json:
        print(orjson.dumps(_plain(result)).decode())
    else:
        print(show(result))
    return OK


async def _with_client(args: argparse.Namespace, call: Call) -> Any:
    async with ApiClient(args.url, api_key=args.api_key, timeout=args.timeout) as api:
        return await call(api, args)


def _plain(result: Any) -> Any:
    return dataclasses.asdict(result) if dataclasses.is_dataclass(result) else result


def _data(args: argparse.Namespace) -> Any:
    text = sys.stdin.read() if args.data == "-" else args.data
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        raise BadArgument(f"DATA must be JSON (a string needs quotes: '\"hello\"'), "
                          f"not {text[:40]!r}") from None


# ---- the calls ---------------------------------------------------------------------------

async def _publish(api: ApiClient, args: argparse.Namespace) -> Published:
    return await api.publish(args.channel, _data(args), source=args.source)


async def _send(api: ApiClient, args: argparse.Namespace) -> Published:
    return await api.send(args.user, _data(args), source=args.source)


async def _broadcast(api: ApiClient, args: argparse.Namespace) -> Published:
    return await api.broadcast(_data(args), source=args.source)


async def _history(api: ApiClient, args: argparse.Namespace) -> HistoryPage:
    return await api.history(args.channel, limit=args.limit, since=args.since,
                             reverse=args.reverse)


async def _presence(api: ApiClient, args: argparse.Namespace) -> Presence:
    return await api.presence(args.channel)


async def _inbox(api: ApiClient, args: argparse.Namespace) -> dict:
    return await api.inbox(args.user, source=args.source, limit=args.limit)


async def _info(api: ApiClient, args: argparse.Namespace) -> Info:
    return await api.info()


async def _disconnect(api: ApiClient, args: argparse.Namespace):
    return await api.disconnect(args.user, reconnect=not args.no_reconnect, client=args.client)


# ---- human output ------------------------------------------------------------------------

def _show_published(result: Published) -> str:
    if result.offset is None:
        return f"{result.channel}: delivered (ephemeral: not stored)"
    return f"{result.channel}: offset {result.offset}, epoch {result.epoch}"


def _show_history(page: HistoryPage) -> str:
    lines = [f"{page.channel}: last offset {page.offset}, epoch {page.epoch}, "
             f"{len(page.publications)} shown"]
    for pub in page.publications:
        who = " ".join(part for part in (
            f"source={pub.source}" if pub.source else "",
            f"sender={pub.sender}" if pub.sender else "") if part)
        lines.append(f"{pub.offset:>8}  {_time(pub.time)}  {who or '-'}  "
                     f"{orjson.dumps(pub.data).decode()}")
    return "\n".join(lines)


def _show_presence(presence: Presence) -> str:
    lines = [f"{presence.channel}: {len(presence.clients)} connection(s)"]
    for member in presence.clients.values():
        lines.append(f"  {member.user}  on {member.node}  (client {member.client})")
    return "\n".join(lines)


def _show_info(info: Info) -> str:
    lines = [f"answered by {info.node} (tidings {info.version}); {len(info.nodes)} live node(s):"]
    for node in info.nodes:
        lines.append(f"  {node.name}  {node.address}  {node.connections} connection(s), "
                     f"{node.users} user(s), up since {_time(node.started)}, {node.version}")
    return "\n".join(lines)


def _show_json(result: Any) -> str:
    return orjson.dumps(result, option=orjson.OPT_INDENT_2).decode()


def _time(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + "Z"
