"""The `tidings` subcommands other than `serve`, one module each.

Each module has `add_to(subcommands)`, which adds its parser(s) and sets `run(args) -> int`
(the exit status) as the parser's default; `tidings.cli` only wires them in.
"""

from tidings.commands import check, genconfig, remote

COMMANDS = [check, genconfig, remote]
