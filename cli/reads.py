"""The read commands: ``payouts``, ``statement``, ``explain``, ``dead-letters``,
``merchant-statement``. Each answers from the read-model tables, caught up first."""

from __future__ import annotations

import argparse
import sys

import msgspec

from cli.errors import UsageError
from cli.options import Command, as_of, format_option, store_url, time_travel_options
from cli.progress import Bars
from cli.render import out
from projections import readmodels
from projections.readmodels import Page
from projections.render import render, render_json

BALANCE_COLUMNS = ("promoter_id", "currency", "pending", "payable", "paid")
AMOUNTS = ("pending", "payable", "paid", "amount", "amount_minor")
STATEMENT_COLUMNS = ("journal", "position", "kind", "currency", "amount_minor", "debit", "credit", "order_id", "level",
                     "rules_version", "cause", "pending", "payable", "paid", "group")
DEAD_LETTER_COLUMNS = ("journal", "position", "reason", "source", "detail", "raw")
MERCHANT_COLUMNS = ("order_id", "currency", "accrued_minor", "reversed_minor", "net_minor", "settled", "groups")
MERCHANT_AMOUNTS = ("accrued_minor", "reversed_minor", "net_minor")


def payouts_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--currency", help="only this currency")
    time_travel_options(parser)
    format_option(parser)


def payouts(args: argparse.Namespace) -> int:
    with Bars() as bars:
        rows = readmodels.balances(bars.store(store_url(args)), currency=args.currency, **as_of(args)).items
    out(render(rows, BALANCE_COLUMNS, args.format, AMOUNTS))
    return 0


def _paging_options(parser: argparse.ArgumentParser, what: str, one: str) -> None:
    parser.add_argument("--limit", type=int, default=None, metavar="N", help=f"at most N {what} (default: all)")
    parser.add_argument("--after", type=int, default=0, metavar="N", help=f"start after the N-th {one} (default 0)")


def _paging(args: argparse.Namespace) -> dict:
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit {args.limit}: must be at least 1")
    if args.after < 0:
        raise UsageError(f"--after {args.after}: must be at least 0")
    return {"after": args.after, "limit": args.limit}


def _more(page: Page) -> None:
    """Tell a human where the next page starts (stderr: stdout is the page)."""
    if page.next is not None:
        print(f"(more: --after {page.next})", file=sys.stderr)


def statement_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("promoter_id", metavar="PROMOTER_ID")
    _paging_options(parser, "entries", "entry")
    time_travel_options(parser)
    format_option(parser)


def statement_of(args: argparse.Namespace) -> int:
    paging = _paging(args)
    with Bars() as bars:
        page = readmodels.statement(bars.store(store_url(args)), args.promoter_id, **paging, **as_of(args))
    out(render(page.items, STATEMENT_COLUMNS, args.format, AMOUNTS))
    _more(page)
    return 0


def dead_letters_options(parser: argparse.ArgumentParser) -> None:
    _paging_options(parser, "dead letters", "dead letter")
    format_option(parser)


def dead_letters_of(args: argparse.Namespace) -> int:
    paging = _paging(args)
    with Bars() as bars:
        page = readmodels.dead_letters(bars.store(store_url(args)), **paging)
    rows = page.items
    if args.format == "table":
        rows = [msgspec.structs.replace(r, raw=r.raw[:60]) for r in rows]
    out(render(rows, DEAD_LETTER_COLUMNS, args.format))
    _more(page)
    return 0


def merchant_statement_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("merchant_id", metavar="MERCHANT_ID")
    parser.add_argument("--from", dest="from_", default=None, metavar="TS", help="orders that occurred at or after TS")
    parser.add_argument("--to", default=None, metavar="TS", help="orders that occurred before TS")
    format_option(parser)


def render_merchant_statement(view: dict, fmt: str) -> str:
    """SPEC §13's JSON as is; a table of orders and one of totals; CSV rows of
    orders, then one per currency total (its order_id empty)."""
    if fmt == "json":
        return render_json(view) + "\n"
    if fmt == "csv":
        totals = [{**t, "order_id": "", "settled": None, "groups": ""} for t in view["totals"]]
        rows = [{**o, "settled": str(o["settled"]).lower(), "groups": ",".join(o["groups"])} for o in view["orders"]]
        return render(rows + totals, MERCHANT_COLUMNS, "csv")
    rows = [{**o, "settled": "yes" if o["settled"] else "no", "groups": ",".join(o["groups"])} for o in view["orders"]]
    return (f"merchant {view['merchant_id']}\n" + render(rows, MERCHANT_COLUMNS, "table", MERCHANT_AMOUNTS)
            + "\ntotals\n" + render(view["totals"], MERCHANT_COLUMNS[1:5], "table", MERCHANT_AMOUNTS))


def merchant_statement(args: argparse.Namespace) -> int:
    bounds = readmodels.period(args.from_, args.to)
    with Bars() as bars:
        view = readmodels.merchant_statement(bars.store(store_url(args)), args.merchant_id, **bounds)
    out(render_merchant_statement(view, args.format))
    return 0


AWAITING_COLUMNS = ("order_id", "journal", "buyer_id", "merchant_id", "currency", "occurred_at", "status", "shipped_at",
                    "due_at")


def pending_receipt_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="at most N orders (default: all)")
    parser.add_argument("--after", default=None, metavar="CURSOR", help="start after this cursor (printed after a page)")
    format_option(parser)


def pending_receipt(args: argparse.Namespace) -> int:
    from projections.pending_receipt import pending_receipt as listing

    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit {args.limit}: must be at least 1")
    with Bars() as bars:
        page = listing(bars.store(store_url(args)), after=args.after, limit=args.limit)
    out(render(page.items, AWAITING_COLUMNS, args.format))
    _more(page)
    return 0


PENDING_RECEIPT = Command(pending_receipt_options, pending_receipt)
PAYOUTS = Command(payouts_options, payouts)
STATEMENT = Command(statement_options, statement_of)
DEAD_LETTERS = Command(dead_letters_options, dead_letters_of)
MERCHANT_STATEMENT = Command(merchant_statement_options, merchant_statement)
