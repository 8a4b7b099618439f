"""``commission-ledger``: the command line (SPEC §10), at the top of the imports.

The parser is assembled here from the table of commands below, in the order
``--help`` lists them; each command module beside this one holds its options
and what runs it. Exit codes: see cli.errors.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Sequence

from cli.errors import PROG, exit_code
from cli.options import Command, Parser, global_options
from ledger.limits import parse_limits

# name, module, attribute, help line. The parser lists every command from this
# table and imports only the module of the command that runs: the Kafka and
# HTTP commands pull in kafka-python, Litestar and uvicorn (about half a
# second), which a `payouts` or a `statement` should not pay at every start.
COMMANDS: tuple[tuple[str, str, str, str], ...] = (
    ('ingest', 'cli.ingest', 'INGEST',
     'read JSONL files (- = stdin) into the ledger; print accepted, duplicates, parked, dead letters'),
    ('settle', 'cli.books', 'SETTLE',
     'settle every known order whose return window has passed as of TS (SPEC §7)'),
    ('payout', 'cli.books', 'PAYOUT',
     'pay every payable balance ≥ min_payout as of TS; list each line'),
    ('payouts', 'cli.reads', 'PAYOUTS',
     'current balances per promoter and currency'),
    ('statement', 'cli.reads', 'STATEMENT',
     'every entry of one promoter, with order, level, rules version'),
    ('explain', 'cli.explain', 'EXPLAIN',
     'why an order went to whom, and how each amount was computed'),
    ('dead-letters', 'cli.reads', 'DEAD_LETTERS',
     'the dead letters: reason, source, original bytes'),
    ('merchant-statement', 'cli.reads', 'MERCHANT_STATEMENT',
     'the commission one merchant owes, per order and currency, with totals'),
    ('pending-receipt', 'cli.reads', 'PENDING_RECEIPT',
     'orders waiting for receipt under the receipt clock (SPEC §15), oldest first'),
    ('adjust', 'cli.books', 'ADJUST',
     'a manual adjustment to payable (bonus or correction), recorded with actor and reason'),
    ('hold', 'cli.holds', 'HOLD',
     'hold an order (not settled while held) or a promoter (skipped by payouts), with a reason (SPEC §16)'),
    ('release', 'cli.holds', 'RELEASE',
     'lift every hold in force on an order (approving it) or a promoter'),
    ('reject', 'cli.holds', 'REJECT',
     "reject an order: its commission becomes 0 for good (reversed or clawed back now)"),
    ('holds', 'cli.holds', 'HOLDS',
     'the holds in force, review holds included'),
    ('audit', 'cli.audit', 'AUDIT',
     'audit tools'),
    ('migrate', 'cli.migrate', 'MIGRATE',
     'one-time: re-execute journals written by an earlier version into state tables and hash chains'),
    ('project', 'cli.project', 'PROJECT',
     'the projection process: fold the notification log into the read-model tables, with tracking'),
    ('consume', 'cli.kafka', 'CONSUME',
     'the long-running Kafka consumer (exactly-once effect)'),
    ('publish', 'cli.kafka', 'PUBLISH',
     'publish JSONL events to the topics and keys of SPEC §1 (acks=all, idempotent)'),
    ('relay', 'cli.relay', 'RELAY',
     'publish every money movement to Kafka (commission-ledger-events), at least once'),
    ('serve', 'cli.serve', 'SERVE',
     'the HTTP API and payout pages for finance and auditors'),
    ('demo', 'cli.demo', 'DEMO',
     'the whole pipeline on embedded defaults: broker, publish, consume, settle, pay out, relay, audit'),
)


def _command(module: str, attribute: str) -> Command:
    return getattr(importlib.import_module(module), attribute)


def build_parser(chosen: str | None = None) -> Parser:
    """The parser; the options of ``chosen`` (every command's when None) are added."""
    parser = Parser(prog=PROG, description="Event-sourced commission and attribution ledger for social commerce.")
    global_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    commands.required = True
    for name, module, attribute, help_line in COMMANDS:
        sub = commands.add_parser(name, help=help_line, description=help_line)
        global_options(sub, suppress=True)
        if chosen is None or chosen == name:
            _command(module, attribute).options(sub)
    return parser


GLOBAL_WITH_VALUE = ("--store", "--config")


def _chosen(argv: Sequence[str]) -> str:
    """The command named in ``argv`` ("" when none: the parser then says so):
    the first word that is not a global option or its value."""
    names = {name for name, *_ in COMMANDS}
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in GLOBAL_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            return arg if arg in names else ""
    return ""


def _run(argv: Sequence[str] | None) -> int:
    parse_limits(os.environ)  # a bad limit is a usage error before anything runs
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(_chosen(argv)).parse_args(argv)
    module, attribute = next((m, a) for name, m, a, _ in COMMANDS if name == args.command)
    return _command(module, attribute).run(args)


def main(argv: Sequence[str] | None = None) -> int:
    return exit_code(_run, argv)


if __name__ == "__main__":
    sys.exit(main())
