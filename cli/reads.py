"""The read commands: ``payouts``, ``statement``, ``explain``, ``dead-letters``."""

from __future__ import annotations

import argparse

import msgspec

from cli.errors import UsageError
from cli.options import Command, as_of, format_option, store_url, time_travel_options
from cli.progress import Bars
from cli.render import explain_text, out
from ledger.books import Books
from projections.balances import balance_rows
from projections.dead_letters import dead_letters
from projections.explain import Explainer
from projections.live import LiveBalances
from projections.render import render, render_json
from projections.statements import statement

BALANCE_COLUMNS = ("promoter_id", "currency", "pending", "payable", "paid")
AMOUNTS = ("pending", "payable", "paid", "amount", "amount_minor")
STATEMENT_COLUMNS = ("journal", "position", "kind", "currency", "amount_minor", "debit", "credit", "order_id", "level",
                     "rules_version", "cause", "pending", "payable", "paid")
DEAD_LETTER_COLUMNS = ("journal", "position", "reason", "source", "detail", "raw")


def payouts_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--currency", help="only this currency")
    time_travel_options(parser)
    format_option(parser)


def payouts(args: argparse.Namespace) -> int:
    with Bars() as bars:
        store = bars.store(store_url(args))
        when = as_of(args)
        balances = Books(store).balances(**when) if when else LiveBalances(store).current().balances
    out(render(balance_rows(balances, args.currency), BALANCE_COLUMNS, args.format, AMOUNTS))
    return 0


def statement_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("promoter_id", metavar="PROMOTER_ID")
    time_travel_options(parser)
    format_option(parser)


def statement_of(args: argparse.Namespace) -> int:
    with Bars() as bars:
        entries = statement(Books(bars.store(store_url(args))).records(**as_of(args)), args.promoter_id)
    out(render(entries, STATEMENT_COLUMNS, args.format, AMOUNTS))
    return 0


def explain_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("order_id", metavar="ORDER_ID")
    parser.add_argument("--format", choices=("text", "json"), default="text")


def explain(args: argparse.Namespace) -> int:
    with Bars() as bars:
        view = Explainer(bars.store(store_url(args))).explain(args.order_id)
    if view is None:
        raise UsageError(f"unknown order {args.order_id!r}")
    out(render_json(view) + "\n" if args.format == "json" else explain_text(view))
    return 0


def dead_letters_options(parser: argparse.ArgumentParser) -> None:
    format_option(parser)


def dead_letters_of(args: argparse.Namespace) -> int:
    with Bars() as bars:
        rows = dead_letters(Books(bars.store(store_url(args))).records())
    if args.format == "table":
        rows = [msgspec.structs.replace(r, raw=r.raw[:60]) for r in rows]
    out(render(rows, DEAD_LETTER_COLUMNS, args.format))
    return 0


PAYOUTS = Command("payouts", "current balances per promoter and currency", payouts_options, payouts)
STATEMENT = Command("statement", "every entry of one promoter, with order, level, rules version", statement_options, statement_of)
EXPLAIN = Command("explain", "why an order went to whom, and how each amount was computed", explain_options, explain)
DEAD_LETTERS = Command("dead-letters", "the dead letters: reason, source, original bytes", dead_letters_options, dead_letters_of)
