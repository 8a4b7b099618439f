"""Audit replay: rebuild every projection from the stored events in one
streaming pass, compare with the live projection (the newest snapshot of the
projection process plus what was committed since), check that the books
balance, and print a stable digest.

With ``verify_rules`` it also re-executes every journal under its recorded
rules and checks each stored record against what the rules produce (raises
ledger.app.IntegrityError on the first difference): the check that catches an
edited event payload, not only edited amounts.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Callable

import msgspec

from ledger.app import Ledger
from ledger.books import Books
from ledger import log
from ledger.records import RecordMoney, SegmentView, dead_letters_of, decode_segment_money
from ledger.store import JournalStore, Store
from projections.balances import BalanceRow, balance_rows, fold_transfer
from projections.live import LiveBalances

PROGRESS_EVERY_RECORDS = 50_000
BUCKETS = frozenset({"expense", "pending", "payable", "paid", "adjustment"})


@dataclass
class AuditResult:
    records: int
    digest: str  # identifies this journal's projections (balances, dead letters, record count)
    differences: list[str]
    unbalanced: dict[str, int]
    position: int
    balances_digest: str = ""  # the non-zero balances alone: equal for the same events however ingested


class _Rebuild:
    """Every projection the digest covers, folded one record at a time."""

    def __init__(self) -> None:
        self.balances: dict[tuple[str, str], list[int]] = {}
        self.currency_totals: dict[str, int] = {}
        self.letters = hashlib.sha256()
        self.records = 0
        self.position = 0

    def add_segment(self, notification_id: int, segment: SegmentView[RecordMoney]) -> None:
        for record in segment.records:
            for t in record.transfers:
                fold_transfer(self.balances, t)
                # Double entry holds by construction (a transfer debits one
                # account what it credits another); what can break it is a
                # malformed transfer, so count those per currency.
                if t.amount_minor <= 0 or t.debit == t.credit or not {t.debit, t.credit} <= BUCKETS:
                    self.currency_totals[t.currency] = self.currency_totals.get(t.currency, 0) + 1
            for letter in dead_letters_of(record):
                self.letters.update(msgspec.json.encode(
                    (letter.reason, letter.source.text(), base64.b64encode(letter.raw).decode())
                ))
        self.records += len(segment.records)
        self.position = notification_id

    def digest(self) -> str:
        return digest_of(balance_rows(self.balances), self.letters.hexdigest(), self.records)

    def balances_digest(self) -> str:
        rows = [r for r in balance_rows(self.balances) if (r.pending, r.payable, r.paid) != (0, 0, 0)]
        return hashlib.sha256(msgspec.json.encode(rows)).hexdigest()


def digest_of(rows: list[BalanceRow], letters_sha256: str, records: int) -> str:
    canonical = msgspec.json.encode({"records": records, "balances": rows, "dead_letters_sha256": letters_sha256})
    return hashlib.sha256(canonical).hexdigest()


def _compare(rebuilt: dict, live: dict) -> list[str]:
    rebuilt_rows = {(r.promoter_id, r.currency): r for r in balance_rows(rebuilt)}
    live_rows = {(r.promoter_id, r.currency): r for r in balance_rows(live)}
    return [
        f"{key[0]} {key[1]}: live {live_rows.get(key)} != rebuilt {rebuilt_rows.get(key)}"
        for key in sorted(rebuilt_rows.keys() | live_rows.keys())
        if rebuilt_rows.get(key) != live_rows.get(key)
    ]


def audit_replay(store: Store, progress: Callable[[int], None] | None = None, *, verify_rules: bool = False) -> AuditResult:
    rebuild = _Rebuild()
    next_report = PROGRESS_EVERY_RECORDS
    for notification_id, _, segment in log.segments(store, decode=decode_segment_money):
        rebuild.add_segment(notification_id, segment)
        if progress is not None and rebuild.records >= next_report:
            progress(rebuild.records)
            next_report += PROGRESS_EVERY_RECORDS
    live = LiveBalances(store)
    snapshot_version, _ = live.latest()
    # Without a snapshot the live projection *is* a fold of the same log: skip it.
    differences = _compare(rebuild.balances, live.current().balances) if snapshot_version else []
    if verify_rules:
        for name in Books(store).journals():
            # Re-executes every record and raises IntegrityError at the first
            # one that differs from what the rules produce.
            Ledger(JournalStore(store, name), verify=True, on_record=progress)
    unbalanced = {c: v for c, v in rebuild.currency_totals.items() if v != 0}
    return AuditResult(rebuild.records, rebuild.digest(), differences, unbalanced, rebuild.position,
                       rebuild.balances_digest())


def digest_at(store: Store, position: int) -> str:
    """The digest of the projections as of store position ``position``."""
    rebuild = _Rebuild()
    for notification_id, _, segment in log.segments(store, until_position=position, decode=decode_segment_money):
        rebuild.add_segment(notification_id, segment)
    return rebuild.digest()
