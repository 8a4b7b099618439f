"""Audit replay: rebuild every projection from the stored records, compare with
the live ones (the engine's own balances after re-executing every record under
its rules), and print a stable digest."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

import msgspec

from ledger.app import Ledger
from ledger.store import JournalStore
from projections.balances import BalanceRow, balance_rows, balances_from_records, books
from projections.dead_letters import dead_letters


@dataclass
class AuditResult:
    records: int
    digest: str
    differences: list[str]
    unbalanced: dict[str, int]


def digest_of(rows: list[BalanceRow], letters: list, version: int) -> str:
    canonical = msgspec.json.encode(
        {
            "journal_version": version,
            "balances": rows,
            "dead_letters": [(d.reason, d.source, d.raw_base64) for d in letters],
        }
    )
    return hashlib.sha256(canonical).hexdigest()


def audit_replay(store: JournalStore, progress: Callable[[int], None] | None = None) -> AuditResult:
    """Re-execute the journal (raises ledger.app.IntegrityError on a tampered
    record), fold its transfers independently, and compare the two."""
    ledger = Ledger(store, verify=True, on_record=progress)
    records = [r for _, r in ledger.records()]
    folded = balance_rows(balances_from_records(records))
    live = balance_rows(ledger.engine.balances)
    differences = []
    live_by_key = {(r.promoter_id, r.currency): r for r in live}
    folded_by_key = {(r.promoter_id, r.currency): r for r in folded}
    for key in sorted(live_by_key.keys() | folded_by_key.keys()):
        if live_by_key.get(key) != folded_by_key.get(key):
            differences.append(f"{key[0]} {key[1]}: live {live_by_key.get(key)} != replayed {folded_by_key.get(key)}")
    totals: dict[str, int] = {}
    for (account, currency), amount in books(records).items():
        totals[currency] = totals.get(currency, 0) + amount
    unbalanced = {c: v for c, v in totals.items() if v != 0}
    letters = dead_letters(ledger.records())
    return AuditResult(ledger.version, digest_of(folded, letters, ledger.version), differences, unbalanced)
