"""SPEC §16 on the command line: ``hold``, ``release``, ``reject`` and ``holds``.

An unknown order, an order already settled or rejected, or nothing to release
is a one-line error with exit 2 (``ledger.errors``: NotFoundError, ConflictError)."""

from __future__ import annotations

import argparse
import os

from cli.books import open_books
from cli.options import Command, format_option
from cli.progress import Bars
from cli.render import out
from ledger.records import command_id
from projections.holds import HOLD_COLUMNS
from projections.render import render, render_json


def _actor(args: argparse.Namespace) -> str:
    return args.actor or os.environ.get("USER") or "cli"


def _target_options(parser: argparse.ArgumentParser, kinds: tuple[str, ...] = ("order", "promoter")) -> None:
    parser.add_argument("kind", choices=kinds, metavar="|".join(kinds))
    parser.add_argument("id", metavar="ID")
    parser.add_argument("--reason", required=True, metavar="TEXT", help="why (1-500 characters)")
    parser.add_argument("--actor", default=None, help="who (default: $USER)")


def hold(args: argparse.Namespace) -> int:
    with Bars() as bars:
        journal, position, _ = open_books(args, bars).hold(args.kind, args.id, args.reason, _actor(args))
    out(f"held {args.kind} {args.id} ({command_id(journal, position)})\n")
    return 0


def release(args: argparse.Namespace) -> int:
    with Bars() as bars:
        journal, position, _ = open_books(args, bars).release(args.kind, args.id, args.reason, _actor(args))
    out(f"released {args.kind} {args.id} ({command_id(journal, position)})\n")
    return 0


def reject(args: argparse.Namespace) -> int:
    with Bars() as bars:
        journal, position, record = open_books(args, bars).reject(args.id, args.reason, _actor(args))
    moved = ", ".join(f"{t.kind} {t.promoter_id} L{t.level} {t.currency} {t.amount_minor}"
                      for t in record.transfers) or "nothing was posted"  # type: ignore[attr-defined]
    out(f"rejected order {args.id} ({command_id(journal, position)}): {moved}\n")
    return 0


def holds_options(parser: argparse.ArgumentParser) -> None:
    format_option(parser)


def holds(args: argparse.Namespace) -> int:
    with Bars() as bars:
        rows = open_books(args, bars).holds_in_force()
    if args.format == "json":
        out(render_json(rows) + "\n")
    else:
        out(render([{**r, "reasons": ",".join(r["reasons"])} for r in rows], HOLD_COLUMNS, args.format, ("position",)))
    return 0


HOLD = Command(_target_options, hold)
RELEASE = Command(_target_options, release)
REJECT = Command(lambda p: _target_options(p, ("order",)), reject)
HOLDS = Command(holds_options, holds)
