"""Audit replay: rebuild every projection from the stored records, compare with
the live ones (the engine's own balances after re-executing every record under
its rules), and print a stable digest."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import msgspec

from ledger.app import Ledger
from ledger.books import Books
from ledger.store import JournalStore, Store
from projections.balances import BalanceRow, balance_rows, balances_from_records
from projections.balances import books as books_of
from projections.dead_letters import dead_letters


@dataclass
class AuditResult:
    records: int
    digest: str
    differences: list[str]
    unbalanced: dict[str, int]


def digest_of(rows: list[BalanceRow], letters: list, records: int) -> str:
    canonical = msgspec.json.encode(
        {
            "records": records,
            "balances": rows,
            "dead_letters": [(d.reason, d.source, d.raw_base64) for d in letters],
        }
    )
    return hashlib.sha256(canonical).hexdigest()


def audit_replay(store: Store, progress: Callable[[int], None] | None = None) -> AuditResult:
    """Re-execute every journal (raises ledger.app.IntegrityError on a tampered
    record), fold the stored transfers independently, and compare the two."""
    books = Books(store)
    live: dict[tuple[str, str], list[int]] = {}
    count = 0
    for name in books.journals():
        ledger = Ledger(JournalStore(store, name), verify=True, on_record=progress)
        count += ledger.position
        for key, row in ledger.engine.balances.items():
            total = live.setdefault(key, [0, 0, 0])
            for i in range(3):
                total[i] += row[i]
    records = [r for _, _, r in books.records()]
    folded = balance_rows(balances_from_records(records))
    live_rows = balance_rows(live)
    differences = []
    live_by_key = {(r.promoter_id, r.currency): r for r in live_rows}
    folded_by_key = {(r.promoter_id, r.currency): r for r in folded}
    for key in sorted(live_by_key.keys() | folded_by_key.keys()):
        if live_by_key.get(key) != folded_by_key.get(key):
            differences.append(f"{key[0]} {key[1]}: live {live_by_key.get(key)} != replayed {folded_by_key.get(key)}")
    totals: dict[str, int] = {}
    for (account, currency), amount in books_of(records).items():
        totals[currency] = totals.get(currency, 0) + amount
    unbalanced = {c: v for c, v in totals.items() if v != 0}
    letters = dead_letters(books.records())
    return AuditResult(count, digest_of(folded, letters, count), differences, unbalanced)


def digest_at(store: Store, position: int) -> str:
    """The digest of the projections as of store position ``position``."""
    books = Books(store)
    records = list(books.records(until_position=position))
    folded = balance_rows(balances_from_records(r for _, _, r in records))
    return digest_of(folded, dead_letters(records), len(records))
