"""Fulfillment and the receipt clock (SPEC §15).

An order's receipt instant ``r(O) = min(received_at, shipped_at +
auto_receive_after)`` over the terms that exist. Under ``clock = "receipt"``
(of the order's rules version) an order is due at ``receipt_due_us``; the due
index holds every such order that has a due instant, keyed by it, so that
settle stays one range scan; a fulfillment or a refund that moves the instant
moves the order's key (it touches its order only). The orders not received
(nor fully refunded) are also kept by order instant: the pending-receipt
listing and its count. Fulfillments whose order is not known yet are parked
and applied when it arrives (like refunds).
"""

from __future__ import annotations

from ledger.engine import spaces
from ledger.engine.codecs import decoder, encode, id_key
from ledger.engine.state import JournalMeta, OrderState, Params, ParkedFulfillment
from ledger.engine.tables import StateCache
from ledger.statestore import sort_key, text

SHIPPED = "shipped"
RECEIVED = "received"


def receipt_instant_us(state: OrderState, auto_receive_us: int) -> int | None:
    """r(O), or None when neither term exists."""
    instant = state.received_us
    if state.shipped_us is not None:
        auto_us = state.shipped_us + auto_receive_us
        if instant is None or auto_us < instant:
            instant = auto_us
    return instant


def receipt_due_us(state: OrderState, params: Params) -> int | None:
    """When a receipt-clock order is due for settlement, or None (pending
    whatever its age): ``O.occurred_at + return_window`` once it is fully
    refunded (R = C, true of C = 0), else ``max(O.occurred_at, r(O)) +
    return_window`` once r(O) exists. The earlier of both when both hold,
    which is always the first."""
    if state.refunded_minor == state.commissionable_minor:
        return state.occurred_us + params.return_window_us
    instant = receipt_instant_us(state, params.auto_receive_us)
    if instant is None:
        return None
    return max(state.occurred_us, instant) + params.return_window_us


def awaits_receipt(state: OrderState) -> bool:
    """An unsettled receipt-clock order not received and not fully refunded."""
    return (state.receipt_clock and not state.settled and state.received_us is None
            and state.refunded_minor != state.commissionable_minor)


def record_fulfillment(state: OrderState, stage: str, occurred_us: int) -> bool:
    """Take one accepted fulfillment into the order's instants (the earliest
    of each stage counts); True when an instant moved."""
    if stage == SHIPPED:
        if state.shipped_us is None or occurred_us < state.shipped_us:
            state.shipped_us = occurred_us
            return True
        return False
    if state.received_us is None or occurred_us < state.received_us:
        state.received_us = occurred_us
        return True
    return False


class Receipts:
    """The due index, the awaiting-receipt index and parked fulfillments."""

    def __init__(self, cache: StateCache, meta: JournalMeta) -> None:
        self._meta = meta
        self.due = cache.sorted_space(spaces.RECEIPT_DUE)  # sort_key(due_us, event_id) → order_id
        self.awaiting = cache.sorted_space(spaces.AWAITING_RECEIPT)  # sort_key(occurred_us, event_id) → order_id
        self.parked = cache.table(spaces.PARKED_FULFILLMENTS, id_key, encode, decoder(list[ParkedFulfillment]))

    def add(self, state: OrderState, params: Params) -> None:
        """A new order under the receipt clock (its fulfillments not applied yet)."""
        state.receipt_clock = True
        self.reindex(state, params, False)

    def reindex(self, state: OrderState, params: Params, was_awaiting: bool) -> None:
        """After the order's instants or refunds changed: move its keys."""
        due = receipt_due_us(state, params)
        if due != state.due_us:
            if not state.withdrawn:  # a held order has no key here until released (SPEC §16)
                if state.due_us is not None:
                    self.due.delete(sort_key(state.due_us, state.event_id))
                if due is not None:
                    self.due.put(sort_key(due, state.event_id), id_key(state.order_id))
            state.due_us = due
        now = awaits_receipt(state)
        if now != was_awaiting:
            key = sort_key(state.occurred_us, state.event_id)
            if now:
                self.awaiting.put(key, id_key(state.order_id))
                self._meta.awaiting_receipt += 1
            else:
                self.awaiting.delete(key)
                self._meta.awaiting_receipt -= 1

    def settled(self, state: OrderState, was_awaiting: bool) -> None:
        """The order settled: it leaves both indexes."""
        if state.due_us is not None:
            self.due.delete(sort_key(state.due_us, state.event_id))
        if was_awaiting:
            self.awaiting.delete(sort_key(state.occurred_us, state.event_id))
            self._meta.awaiting_receipt -= 1

    def due_ids(self, as_of_us: int, limit: int | None) -> list[str]:
        """Orders with due_us ≤ as_of, in (due_us, event_id) order."""
        return [text(order_id) for _, order_id in self.due.scan(b"", sort_key(as_of_us + 1, ""), limit)]

    def awaiting_ids(self, after: bytes = b"", limit: int | None = None) -> list[tuple[bytes, str]]:
        """(key, order_id) of orders awaiting receipt, oldest first, after ``after``."""
        return [(key, text(order_id)) for key, order_id in self.awaiting.scan(after, limit=limit)]

    # ------------------------------------------------- parked fulfillments
    def park(self, order_id: str, parked: ParkedFulfillment) -> None:
        waiting = self.parked.get(order_id) or []
        waiting.append(parked)
        self.parked.put(order_id, waiting)
        self._meta.parked_fulfillments += 1

    def unpark(self, order_id: str) -> list[ParkedFulfillment]:
        waiting = self.parked.get(order_id)
        if not waiting:
            return []
        self.parked.delete(order_id)
        self._meta.parked_fulfillments -= len(waiting)
        return waiting
