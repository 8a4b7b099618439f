"""One promoter's statement: every transfer touching them, in journal order."""

from __future__ import annotations

from typing import Iterable, Union

import msgspec

from ledger.records import Record, Transfer, cause_of, fold_transfer, record_transfers


class StatementEntry(msgspec.Struct, frozen=True):
    journal: str  # the journal and position of the record that posted it
    position: int
    kind: str
    currency: str
    amount_minor: int
    debit: str
    credit: str
    order_id: Union[str, None]
    level: Union[int, None]
    rules_version: Union[int, None]
    cause: str  # what posted it: an event id, a command and its as-of, an adjustment
    pending: int  # running balances after this entry
    payable: int
    paid: int


class StatementIndex:
    """Statements of every promoter, built one transfer at a time, with running
    balances per (promoter, currency). The service keeps one in memory."""

    def __init__(self) -> None:
        self.entries: dict[str, list[StatementEntry]] = {}
        self._running: dict[tuple[str, str], list[int]] = {}

    def add(self, journal: str, position: int, record, transfer: Transfer) -> None:
        t = transfer
        row = fold_transfer(self._running, t)
        self.entries.setdefault(t.promoter_id, []).append(StatementEntry(
            journal, position, t.kind, t.currency, t.amount_minor, t.debit, t.credit,
            t.order_id, t.level, t.rules_version, cause_of(record), *row,
        ))


def statement(records: Iterable[tuple[str, int, Record]], promoter_id: str) -> list[StatementEntry]:
    """One promoter's entries in commit order, with running balances per currency."""
    index = StatementIndex()
    for journal, position, record in records:
        for t in record_transfers(record):
            if t.promoter_id == promoter_id:
                index.add(journal, position, record, t)
    return index.entries.get(promoter_id, [])
