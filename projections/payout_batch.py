"""A payout batch for finance: each line with the entries it settles.

A line pays a (promoter, currency) payable. What makes up that amount is the
payable carried over from before (what the previous payout left: a negative
clawback or a balance below min_payout) plus every payable entry since
(settlements, clawbacks, adjustments). For each line:
``carried_over + Σ entries = amount``, and the line takes payable to zero.
"""

from __future__ import annotations

from typing import Iterable, Union

import msgspec

from ledger.invariants import require
from ledger.records import PAYABLE, PaidOut, Record, record_transfers
from projections.render import render


class BatchEntry(msgspec.Struct, frozen=True):
    journal: str
    position: int
    kind: str
    amount_minor: int  # signed: + adds to payable, − takes from it
    order_id: Union[str, None]
    level: Union[int, None]


class BatchLine(msgspec.Struct, frozen=True):
    promoter_id: str
    currency: str
    amount_minor: int = msgspec.field(name="amount")  # what the payout paid (the output's "amount" column)
    as_of: str
    carried_over_minor: int = msgspec.field(name="carried_over")  # payable from before this batch
    entries: list[BatchEntry]


def payout_batch(records: Iterable[tuple[str, int, Record]], payout: PaidOut) -> list[BatchLine]:
    """Reconstruct the batch of ``payout`` from the records before it."""
    paid_keys = {(t.promoter_id, t.currency) for t in payout.transfers}
    since: dict[tuple[str, str], list[BatchEntry]] = {k: [] for k in paid_keys}
    carried: dict[tuple[str, str], int] = {k: 0 for k in paid_keys}
    for journal, position, record in records:
        if record == payout:
            break
        for t in record_transfers(record):
            key = (t.promoter_id, t.currency)
            if key not in paid_keys or PAYABLE not in (t.debit, t.credit):
                continue
            if t.kind == "payout":
                # Everything before a payout is settled by it; what it left over carries.
                carried[key] += sum(e.amount_minor for e in since[key]) - t.amount_minor
                since[key] = []
                continue
            signed = t.amount_minor if t.credit == PAYABLE else -t.amount_minor
            since[key].append(BatchEntry(journal, position, t.kind, signed, t.order_id, t.level))
    lines = []
    for t in payout.transfers:
        key = (t.promoter_id, t.currency)
        line = BatchLine(t.promoter_id, t.currency, t.amount_minor, payout.as_of, carried[key], since[key])
        require(line.carried_over_minor + sum(e.amount_minor for e in line.entries) == line.amount_minor,
                f"payout line {line.promoter_id} {line.currency} does not reconcile with its entries")
        lines.append(line)
    return lines


def flat_rows(lines: list[BatchLine]) -> list[dict]:
    """One CSV row per payout line; entries as ``kind order Lk ±amount@journal:position``."""
    return [
        {
            "promoter_id": line.promoter_id,
            "currency": line.currency,
            "amount": line.amount_minor,
            "as_of": line.as_of,
            "carried_over": line.carried_over_minor,
            "entry_count": len(line.entries),
            "entries": "; ".join(
                f"{e.kind} {e.order_id or '-'} L{e.level or '-'} {e.amount_minor:+d}@{e.journal}:{e.position}"
                for e in line.entries
            ),
        }
        for line in lines
    ]


BATCH_COLUMNS = ("promoter_id", "currency", "amount", "as_of", "carried_over", "entry_count")


def render_batch(lines: list[BatchLine], fmt: str) -> str:
    """A batch as ``payout --format table|csv`` prints it (csv adds the entries)."""
    columns = BATCH_COLUMNS + (("entries",) if fmt == "csv" else ())
    return render(flat_rows(lines), columns, fmt, ("amount", "carried_over"))

