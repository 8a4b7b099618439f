"""One promoter's statement: every transfer touching them, in journal order."""

from __future__ import annotations

from typing import Iterable, Union

import msgspec

from ledger.records import Record, cause_of, record_transfers


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


def statement(records: Iterable[tuple[str, int, Record]], promoter_id: str) -> list[StatementEntry]:
    """Entries in commit order, with running balances per currency."""
    running: dict[str, list[int]] = {}
    entries: list[StatementEntry] = []
    for journal, position, record in records:
        for t in record_transfers(record):
            if t.promoter_id != promoter_id:
                continue
            row = running.setdefault(t.currency, [0, 0, 0])
            for bucket, sign in ((t.debit, -1), (t.credit, 1)):
                if bucket in ("pending", "payable", "paid"):
                    row[("pending", "payable", "paid").index(bucket)] += sign * t.amount_minor
            entries.append(
                StatementEntry(
                    journal, position, t.kind, t.currency, t.amount_minor, t.debit, t.credit,
                    t.order_id, t.level, t.rules_version, cause_of(record), *row,
                )
            )
    return entries
