"""One promoter's statement: every transfer touching them, in journal order."""

from __future__ import annotations

from typing import Iterable, Union

import msgspec

import orjson

from ledger.records import Record, RecordDated, cause_of, fold_transfer, record_kind, record_transfers
from schemas.timestamps import format_timestamp_us, parse_timestamp_us


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
    # When it happened in event time (UTC; see StatementIndex); None for an
    # adjustment, which has no event time.
    event_time: Union[str, None] = None


class StatementIndex:
    """Statements of every promoter (or of ``only`` one), built one record at a
    time, with running balances per (promoter, currency). The service keeps
    one in memory.

    Each entry's event time is the later of its cause's event time and its
    order's occurred_at: a late click dated before the order re-attributes
    the order at the order's time, a refund reverses at the refund's time, a
    settle or payout counts at its as-of. So the index remembers every order's
    instant (per journal: order ids are unique within one)."""

    def __init__(self, only: str | None = None) -> None:
        self.only = only
        self.entries: dict[str, list[StatementEntry]] = {}
        self._running: dict[tuple[str, str], list[int]] = {}
        self._order_at: dict[tuple[str, str], str] = {}  # occurred_at text of each order

    def add_record(self, journal: str, position: int, record: "Record | RecordDated") -> None:
        transfers = record_transfers(record)
        if self.only is not None:
            transfers = [t for t in transfers if t.promoter_id == self.only]
        kind = record_kind(record)
        # Exact: without a backslash, a "type" of "order" is spelt literally.
        may_be_order = kind == "ingested" and (b'"order"' in record.raw or b"\\" in record.raw)
        if not transfers and not may_be_order:
            return  # neither this statement's money nor an order's instant
        when, order_id = _event_facts(kind, record)
        if order_id is not None and when is not None:
            self._order_at[(journal, order_id)] = when  # parsed only if an entry needs it
        if not transfers:
            return
        when_us = _instant(when)
        cause = cause_of(record)
        for t in transfers:
            at_us = when_us
            if t.order_id is not None:
                order_us = _instant(self._order_at.get((journal, t.order_id)))
                if order_us is not None and (at_us is None or order_us > at_us):
                    at_us = order_us
            row = fold_transfer(self._running, t)
            self.entries.setdefault(t.promoter_id, []).append(StatementEntry(
                journal, position, t.kind, t.currency, t.amount_minor, t.debit, t.credit,
                t.order_id, t.level, t.rules_version, cause, *row,
                format_timestamp_us(at_us) if at_us is not None else None,
            ))


def _instant(when: int | str | None) -> int | None:
    return parse_timestamp_us(when) if isinstance(when, str) else when


def _event_facts(kind: str | None, record: "Record | RecordDated") -> tuple[int | str | None, str | None]:
    """(event time: µs, or the event's occurred_at text; order_id when the record ingested an order)."""
    if kind in ("settled", "paid_out"):
        return record.as_of_us, None
    if kind != "ingested" or record.raw is None:
        return None, None  # adjustments, network re-walks: no event time of their own
    try:
        event = orjson.loads(record.raw)
    except orjson.JSONDecodeError:
        return None, None
    if not isinstance(event, dict) or not isinstance(event.get("occurred_at"), str):
        return None, None
    order_id = event.get("order_id") if event.get("type") == "order" else None
    return event["occurred_at"], order_id if isinstance(order_id, str) else None


def statement(records: Iterable[tuple[str, int, Record]], promoter_id: str) -> list[StatementEntry]:
    """One promoter's entries in commit order, with running balances per currency."""
    index = StatementIndex(only=promoter_id)
    for journal, position, record in records:
        index.add_record(journal, position, record)
    return index.entries.get(promoter_id, [])


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
