"""``project``: the projection process, folding the notification log into the
read-model tables with tracking (``projections.projector``)."""

from __future__ import annotations

import argparse
import signal
import time

from cli.options import Command, store_url
from cli.progress import Bars
from cli.render import out
from ledger.store import Store
from projections.projector import catch_up
from projections.readmodels import figures


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--follow", action="store_true", help="keep following until SIGTERM/SIGINT")
    parser.add_argument("--every", type=float, default=1.0, metavar="SECONDS",
                        help="with --follow: how often to look for new segments (default 1)")


def run(args: argparse.Namespace) -> int:
    stop: list[bool] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(True))
    segments = records = 0
    seconds = 0.0
    with Bars() as bars:
        store = bars.store(store_url(args))  # the first catch-up shows its progress on a terminal…
        following: Store | None = None
        while True:
            done = catch_up(following or store)
            segments, records, seconds = segments + done.segments, records + done.records, seconds + done.seconds
            if not args.follow or stop:
                break
            following = following or Store(store.url)  # …the following ones do not (a bar each second)
            time.sleep(args.every)
        now = figures(store)
    rate = f", {records / seconds:,.0f} records/s" if records and seconds > 0 else ""
    out(f"read models at store position {now.position} ({now.records} records, {now.balance_rows} balance rows); "
        f"this run folded {segments} segments, {records} records in {seconds:.2f} s{rate}\n")
    return 0


PROJECT = Command(options, run)
