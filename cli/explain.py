"""``explain``: why an order went to whom (its own module: it reads the
journals through the books, which the other reads do not load)."""

from __future__ import annotations

import argparse

from cli.errors import UsageError
from cli.options import Command, store_url
from cli.progress import Bars
from cli.render import explain_text, out
from projections.explain import Explainer
from projections.render import render_json


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


EXPLAIN = Command(explain_options, explain)
