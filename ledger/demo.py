"""``commission-ledger demo``: the whole pipeline on embedded defaults.

Generates a seeded realistic stream (with late, duplicate and malformed
events), feeds it into a temporary SQLite ledger, settles, pays out, and prints
the payout lines, the dead-letter count and the audit digest.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Callable

from consumers.synthetic import generate
from ledger.app import Ledger
from ledger.books import Books
from ledger.config import load_rules
from ledger.records import Source
from ledger.store import JournalStore
from projections.audit import audit_replay
from projections.balances import balance_rows
from projections.render import render

DEMO_EVENTS = 20_000
SETTLE_AS_OF = "2026-03-01T00:00:00+08:00"


def run_demo(args: argparse.Namespace, out: Callable[[str], None]) -> int:
    rules = load_rules(getattr(args, "config", None) or os.environ.get("LEDGER_CONFIG"))
    events = getattr(args, "events", None) or DEMO_EVENTS
    with tempfile.TemporaryDirectory(prefix="commission-ledger-demo-") as tmp:
        url = f"sqlite:///{tmp}/ledger.db"
        ledger = Ledger(JournalStore(url))
        ledger.adopt_rules(rules)
        started = time.monotonic()
        items = ((raw, Source(file="demo-stream", line=i)) for i, raw in enumerate(generate(events, seed=7), 1))
        counts = ledger.ingest(items)
        elapsed = time.monotonic() - started
        out(f"ingested {counts.total} events in {elapsed:.2f}s: accepted={counts.accepted} "
            f"duplicates={counts.duplicates} parked={counts.parked} dead_letters={counts.dead_letters}\n")
        settled = ledger.settle(SETTLE_AS_OF)
        out(f"settled {len(settled.order_ids)} orders as of {SETTLE_AS_OF}\n")
        paid = Books(ledger.store.store).payout(SETTLE_AS_OF)
        lines = [{"promoter_id": t.promoter_id, "currency": t.currency, "amount": t.amount_minor} for t in paid.transfers]
        out(f"payout as of {SETTLE_AS_OF}: {len(lines)} lines, "
            + ", ".join(f"{cur} {sum(x['amount'] for x in lines if x['currency'] == cur)}" for cur in sorted({x['currency'] for x in lines}))
            + "\n\n")
        rows = balance_rows(Books(ledger.store.store).balances())
        top = sorted(rows, key=lambda r: (-r.paid, r.promoter_id, r.currency))[:15]
        out("top balances (minor units):\n")
        out(render(top, ("promoter_id", "currency", "pending", "payable", "paid"), "table", ("pending", "payable", "paid")))
        out(f"\ndead letters: {counts.dead_letters} " + str(dict(sorted(counts.reasons.items()))) + "\n")
        result = audit_replay(ledger.store.store)
        status = "matches live" if not result.differences and not result.unbalanced else "DIFFERS"
        out(f"audit replay of {result.records} records {status}; digest sha256:{result.digest}\n")
        return 0 if status == "matches live" else 1
