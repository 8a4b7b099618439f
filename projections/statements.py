"""One promoter's statement: every transfer touching them, in commit order
(rows of ``projections.readmodels.statement``), and its balances over event time.

Each entry's event time is the later of its cause's event time and its
order's occurred_at: a late click dated before the order re-attributes the
order at the order's time, a refund reverses at the refund's time, a settle or
payout counts at its as-of; an adjustment (or a network re-walk of no order)
has none. The projector stores it with the entry.
"""

from __future__ import annotations

from typing import Union

import msgspec

from schemas.timestamps import parse_timestamp_us


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
    # When it happened in event time (UTC; see above); None for an
    # adjustment, which has no event time.
    event_time: Union[str, None] = None
    # The commission group of an order's entry: its level-1 promoter (SPEC §14;
    # a level-2 entry's is the promoter whose upline earned it). None otherwise.
    group: Union[str, None] = None


def balance_steps(entries: list[StatementEntry], currency: str) -> list[tuple[int, int, int, int]]:
    """(event time µs, pending, payable, paid) after each entry of one currency,
    taken in event time: the balances as they stood at each instant. An entry
    without event time (an adjustment) counts at the event time of the entry
    committed before it."""
    timed: list[tuple[int, int, tuple[int, int, int]]] = []
    before = (0, 0, 0)
    last_us: int | None = None
    for i, e in enumerate(x for x in entries if x.currency == currency):
        after = (e.pending, e.payable, e.paid)
        delta = (after[0] - before[0], after[1] - before[1], after[2] - before[2])
        before = after
        when = parse_timestamp_us(e.event_time) if e.event_time else last_us
        last_us = when if when is not None else last_us
        timed.append((when if when is not None else -1, i, delta))
    first_us = min((t for t, _, _ in timed if t >= 0), default=0)
    steps: list[tuple[int, int, int, int]] = []
    running = [0, 0, 0]
    for when, _, delta in sorted(timed):
        running = [a + b for a, b in zip(running, delta)]
        steps.append((max(when, first_us), *running))
    return steps
