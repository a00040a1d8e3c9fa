"""`tidings check --config FILE`: is this configuration one a node can run with?

It reads the settings exactly as `tidings serve` would, checks what can be checked without
the network (values, auth, key files, URL schemes), then reaches every configured service
and says, in plain words, what answered and what did not. It never starts a node.

Exit status: 0 everything is fine, 2 the configuration itself is wrong, 3 it is valid but a
service could not be reached.

Adding a kind of service (ingest sources, say) is one entry in SERVICES: a function from the
settings to the probes of that kind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from tidings.auth import Authenticator, check_exposure
from tidings.broker import open_broker
from tidings.config import ConfigError, Settings, load_settings
from tidings.store import open_store

OK, BAD_CONFIG, UNREACHABLE = 0, 2, 3


@dataclass(frozen=True, slots=True)
class Probe:
    """One service to reach: what it is, where (secrets masked), and how to reach it."""

    kind: str
    url: str
    reach: Callable[[], Awaitable[str]]  # returns what was found; raises when unreachable

    @property
    def where(self) -> str:
        return masked(self.url)

    def scrub(self, message: str) -> str:
        """A driver's message with the URL's password taken out (some quote the URL)."""
        password = urlsplit(self.url).password
        return message.replace(password, "***") if password else message


def _store_probes(settings: Settings) -> list[Probe]:
    store = open_store(settings.store, group_commit=settings.group_commit)

    async def reach() -> str:
        try:
            await store.start()
            position = (await store.positions(["broadcast"]))["broadcast"]
            return f"answers; history epoch {position.epoch}"
        finally:
            with contextlib.suppress(Exception):
                await store.close()

    return [Probe("store", settings.store, reach)]


def _broker_probes(settings: Settings) -> list[Probe]:
    # A name no node uses: the probe must never be mistaken for (or replace) a live node.
    broker = open_broker(settings.broker, f"check-{secrets.token_hex(4)}", ttl=settings.cluster_ttl)

    async def reach() -> str:
        try:
            await broker.start(lambda channel, payload: None)
            if not broker.shared:
                return "in-process: this node alone, nothing to reach"
            nodes = await broker.nodes()
            return f"answers; {len(nodes)} live node(s) registered"
        finally:
            with contextlib.suppress(Exception):
                await broker.close()

    return [Probe("broker", settings.broker, reach)]


SERVICES: list[Callable[[Settings], list[Probe]]] = [
    _store_probes,
    _broker_probes,
]


def add_to(subcommands: argparse._SubParsersAction) -> None:
    parser = subcommands.add_parser(
        "check", help="validate a configuration and reach every service it names",
        description="Validate settings as `tidings serve` would read them, then reach the "
                    "store and broker. Exit 0: fine; 2: the configuration is wrong; "
                    "3: a service could not be reached.")
    parser.add_argument("--config", help="TOML settings file (TIDINGS_* variables override it)")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds to wait for each service (default 5)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
        probes = _validate(settings)
    except ConfigError as exc:
        print(f"configuration: {exc}", file=sys.stderr)
        return BAD_CONFIG
    print(f"configuration: valid ({args.config or 'defaults and TIDINGS_* variables'})")
    for note in _notes(settings):
        print(f"note: {note}")
    failed = asyncio.run(_reach_all(probes, args.timeout))
    return UNREACHABLE if failed else OK


def _validate(settings: Settings) -> list[Probe]:
    """What can be refused without the network; the probes to run next."""
    if not settings.loopback_only:
        check_exposure(settings)  # refuses a public address without auth
    Authenticator(settings)  # reads the public key file, if one is named
    probes: list[Probe] = []
    for service in SERVICES:
        try:
            probes.extend(service(settings))
        except ValueError as exc:  # an unknown URL scheme, SQLite :memory:
            raise ConfigError(str(exc)) from None
    return probes


def _notes(settings: Settings) -> list[str]:
    notes = []
    if not settings.auth_enabled:
        notes.append(f"no JWT auth: clients name themselves (allowed only on loopback, "
                     f"{settings.host})")
    if settings.api_key is None:
        notes.append("no api_key: the server API answers loopback callers only")
    return notes


async def _reach_all(probes: list[Probe], timeout: float) -> int:
    failed = 0
    for probe in probes:
        try:
            found = await asyncio.wait_for(probe.reach(), timeout)
        except asyncio.TimeoutError:
            failed += 1
            print(f"{probe.kind} {probe.where}: no answer within {timeout:g} s")
        except Exception as exc:  # whatever the driver raises, said in its own words
            failed += 1
            problem = probe.scrub(str(exc) or type(exc).__name__)
            print(f"{probe.kind} {probe.where}: cannot reach it: {problem}")
        else:
            print(f"{probe.kind} {probe.where}: {found}")
    return failed


def masked(url: str) -> str:
    """The URL with any password replaced by ***, fit to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    netloc = f"{parts.username}:***@{host}" if parts.username else f":***@{host}"
    return urlunsplit(parts._replace(netloc=netloc))
