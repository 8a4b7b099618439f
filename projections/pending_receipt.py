"""Orders waiting for receipt (SPEC §15): under the receipt clock, the
unsettled orders not received (nor fully refunded), oldest first, a page at a
time, over every journal; and their count (a metric). Read from each journal's
state tables as they stand (``ledger.engine.fulfillment``'s index): one range
scan per journal and page, never the whole history."""

from __future__ import annotations

from typing import Union

import msgspec

from ledger.books import TREASURY, Books
from ledger.engine import Engine
from ledger.engine.tables import StateCache
from ledger.errors import CommandError
from ledger.limits import DEFAULT_LIMITS, Limits
from ledger.store import JournalStore, Store
from projections.readmodels import Page
from schemas.timestamps import format_timestamp_us


class AwaitingOrder(msgspec.Struct):
    order_id: str
    journal: str
    buyer_id: str
    merchant_id: str
    currency: str
    occurred_at: str
    status: str  # awaiting shipment | awaiting receipt
    shipped_at: Union[str, None]
    due_at: Union[str, None]  # shipped: when it becomes due unless received earlier
    cursor: str  # ``after=`` for the page after this row


def _engines(store: Store, limits: Limits) -> list[tuple[str, Engine]]:
    engines = []
    for name in Books(store).journals():
        if name == TREASURY:
            continue
        journal = JournalStore(store, name)
        engines.append((name, Engine(StateCache(journal.state, journal.number, limits.cache_bytes), limits)))
    return engines


def pending_receipt(store: Store, after: str | None = None, limit: int | None = None,
                    limits: Limits = DEFAULT_LIMITS) -> Page[AwaitingOrder]:
    """Orders awaiting receipt, oldest (order instant, event_id) first;
    ``after``: the cursor of the last row of the previous page."""
    lo = b""
    if after:
        try:
            lo = bytes.fromhex(after) + b"\x00"  # just after that key
        except ValueError:
            raise CommandError(f"after {after[:40]!r}: not a cursor of this listing") from None
    fetch = None if limit is None else limit + 1
    rows: list[tuple[bytes, str, Engine, str]] = []
    for name, engine in _engines(store, limits):
        rows += [(key, name, engine, order_id) for key, order_id in engine.orders.receipts.awaiting_ids(lo, fetch)]
    rows.sort(key=lambda row: (row[0], row[1]))
    if fetch is not None:
        rows = rows[:fetch]
    items = []
    for key, name, engine, order_id in rows:
        state = engine.orders.get(order_id)
        if state is None:
            continue
        items.append(AwaitingOrder(
            order_id, name, state.buyer_id, state.merchant_id, state.currency, format_timestamp_us(state.occurred_us),
            "awaiting receipt" if state.shipped_us is not None else "awaiting shipment",
            format_timestamp_us(state.shipped_us) if state.shipped_us is not None else None,
            format_timestamp_us(state.due_us) if state.due_us is not None else None, key.hex()))
    if limit is not None and len(items) > limit:
        return Page(items[:limit], items[limit - 1].cursor)
    return Page(items, None)


def awaiting_receipt_count(store: Store, limits: Limits = DEFAULT_LIMITS) -> int:
    """How many orders await receipt (the metric): a counter per journal."""
    return sum(engine.awaiting_receipt() for _, engine in _engines(store, limits))
