"""A payout batch for finance: each line with the entries it settles.

A line pays a (promoter, currency) payable. What makes up that amount is the
payable carried over from before (what the previous payout left: a negative
clawback or a balance below min_payout) plus every payable entry since
(settlements, clawbacks, adjustments). For each line:
``carried_over + Σ entries = amount``, and the line takes payable to zero.
Batches are kept by the projector (``projections.readmodels.payout_batch``);
this module holds their rows and renders them.
"""

from __future__ import annotations

from typing import Union

import msgspec

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

