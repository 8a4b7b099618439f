"""The commands that write to the books: ``settle``, ``payout``, ``adjust``."""

from __future__ import annotations

import argparse
import os
import sys

from cli.errors import UsageError
from cli.options import Command, format_option, rules, store_url
from cli.progress import Bars
from cli.render import out
from ledger.books import Books
from ledger.limits import parse_limits
from projections.payout_batch import render_batch
from projections.readmodels import pay_out
from projections.render import render_json


def open_books(args: argparse.Namespace, bars: Bars) -> Books:
    """The books with the configured rules in force, their replays on ``bars``."""
    configured = rules(args)  # before opening the store: a bad config writes nothing
    return Books(bars.store(store_url(args)), configured, parse_limits(os.environ))


def settle_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--as-of", required=True, metavar="TS")


def settle(args: argparse.Namespace) -> int:
    orders = entries = 0
    moved: dict[str, int] = {}  # currency → minor units moved to payable
    review: list[tuple[str, list[str]]] = []
    waiting: dict[str, None] = {}  # order ids waiting on a hold, each once (every batch lists them)
    with Bars() as bars:
        for record in open_books(args, bars).settle_each(args.as_of):
            review += record.review
            waiting.update(dict.fromkeys(record.held_orders))
            orders += len(record.order_ids)
            entries += len(record.transfers)
            for t in record.transfers:
                moved[t.currency] = moved.get(t.currency, 0) + t.amount_minor
    totals = ", ".join(f"{currency} {amount}" for currency, amount in sorted(moved.items())) or "nothing"
    out(f"settled {orders} orders as of {args.as_of}: {entries} entries; moved to payable (minor units): {totals}\n")
    for order_id, reasons in review:
        out(f"held for review: {order_id} ({', '.join(reasons)})\n")
    for order_id in waiting:
        out(f"held: {order_id}\n")
    return 0


def payout_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--as-of", required=True, metavar="TS")
    format_option(parser)


def payout(args: argparse.Namespace) -> int:
    with Bars() as bars:
        _, record, lines = pay_out(open_books(args, bars), args.as_of)
    out(render_json(lines) + "\n" if args.format == "json" else render_batch(lines, args.format))
    # SPEC §16: the lines of held promoters, skipped. A table lists them after
    # the paid lines; JSON and CSV keep their rows as they were (machines read
    # them) and the skipped lines go to stderr.
    for promoter_id, currency, payable_minor in record.held:
        line = f"held: {promoter_id} {currency} {payable_minor} not paid (promoter held)\n"
        if args.format == "table":
            out(line)
        else:
            sys.stderr.write(line)
    return 0


def adjust_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("promoter_id", metavar="PROMOTER_ID")
    parser.add_argument("currency", metavar="CURRENCY")
    parser.add_argument("amount", metavar="AMOUNT", help="integer minor units; negative for a correction")
    parser.add_argument("--reason", required=True)
    parser.add_argument("--actor", default=None, help="who made it (default: $USER)")


def adjust(args: argparse.Namespace) -> int:
    try:
        amount = int(args.amount, 10)
    except ValueError:
        raise UsageError(f"AMOUNT {args.amount!r} must be an integer number of minor units") from None
    actor = args.actor or os.environ.get("USER") or "cli"
    with Bars() as bars:
        record = open_books(args, bars).adjust(args.promoter_id, args.currency, amount, args.reason, actor)
    out(f"adjusted {record.promoter_id} {record.currency} payable by {record.amount_minor} ({record.reason}; by {record.actor})\n")
    return 0


SETTLE = Command(settle_options, settle)
PAYOUT = Command(payout_options, payout)
ADJUST = Command(adjust_options, adjust)
