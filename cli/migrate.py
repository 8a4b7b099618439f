"""``migrate``: bring a store written by an earlier version to state tables and hash chains."""

from __future__ import annotations

import argparse
import os

from cli.options import Command, store_url
from cli.render import out
from ledger.limits import parse_limits
from ledger.migrate import migrate
from ledger.store import Store


def options(parser: argparse.ArgumentParser) -> None:
    del parser  # no options: the store is the global --store


def run(args: argparse.Namespace) -> int:
    done = migrate(Store(store_url(args)), limits=parse_limits(os.environ))
    if not done:
        out("nothing to migrate: every journal has its state tables and hash chain\n")
    for name, segments in sorted(done.items()):
        out(f"migrated journal {name}: {segments} segments re-executed, chained, state written\n")
    out("run `commission-ledger audit replay` and keep its head lines as your first anchor\n")
    return 0


MIGRATE = Command(options, run)
