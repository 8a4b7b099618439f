"""``commission-ledger``: the command line (SPEC §10), at the top of the imports.

The parser is assembled here from the commands of the modules beside this one,
in the order ``--help`` lists them; each command module holds its options and
what runs it. Exit codes: see cli.errors.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

from cli import audit, books, demo, ingest, kafka, migrate, project, reads, relay, serve
from cli.errors import PROG, exit_code
from cli.options import Command, Parser, global_options
from ledger.limits import parse_limits

COMMANDS: tuple[Command, ...] = (
    ingest.INGEST, books.SETTLE, books.PAYOUT, reads.PAYOUTS, reads.STATEMENT, reads.EXPLAIN, reads.DEAD_LETTERS,
    reads.MERCHANT_STATEMENT, books.ADJUST, audit.AUDIT, migrate.MIGRATE, project.PROJECT, kafka.CONSUME, kafka.PUBLISH,
    relay.RELAY, serve.SERVE, demo.DEMO,
)
BY_NAME = {command.name: command for command in COMMANDS}


def build_parser() -> Parser:
    parser = Parser(prog=PROG, description="Event-sourced commission and attribution ledger for social commerce.")
    global_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    for command in COMMANDS:
        sub = commands.add_parser(command.name, help=command.help, description=command.help)
        global_options(sub, suppress=True)
        command.options(sub)
    return parser


def _run(argv: Sequence[str] | None) -> int:
    parse_limits(os.environ)  # a bad limit is a usage error before anything runs
    args = build_parser().parse_args(argv)
    return BY_NAME[args.command].run(args)


def main(argv: Sequence[str] | None = None) -> int:
    return exit_code(_run, argv)


if __name__ == "__main__":
    sys.exit(main())
