"""``project``: the projection process, snapshotting the balances with tracking."""

from __future__ import annotations

import argparse
import signal
import time

from cli.options import Command, store_url
from cli.render import out
from ledger.store import Store
from projections.live import LiveBalances


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--follow", action="store_true", help="keep following until SIGTERM/SIGINT")
    parser.add_argument("--every", type=float, default=5.0, metavar="SECONDS", help="with --follow: snapshot interval (default 5)")


def run(args: argparse.Namespace) -> int:
    live = LiveBalances(Store(store_url(args)))
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(True))
    while True:
        state = live.checkpoint()
        if not args.follow or stop:
            break
        time.sleep(args.every)
    out(f"balances projection at store position {state.position} ({state.records} records, {len(state.balances)} rows)\n")
    return 0


PROJECT = Command("project", "the projection process: follow the notification log, snapshot the balances with tracking", options, run)
