"""The orders a journal knows, and the indexes the engine decides with: every
order by id (refunds and clawbacks need settled ones too), the unsettled ones in
settlement order, each buyer's unsettled orders (a click re-evaluates them),
the unsettled orders each promoter wins at level 1 (a changed upline
re-evaluates them), and the refunds parked until their order arrives (SPEC §6).
Settled orders leave every index but the first: no later click, share or
settle looks at them again."""

from __future__ import annotations

from ledger.engine import spaces
from ledger.engine.codecs import decoder, encode, id_key
from ledger.engine.fulfillment import Receipts, awaits_receipt
from ledger.engine.state import BuyerRow, JournalMeta, OrderRef, OrderState, ParkedRefund
from ledger.engine.tables import StateCache, Table
from ledger.invariants import require
from ledger.statestore import prefixed, sort_key, text


class OrderBook:
    def __init__(self, cache: StateCache, meta: JournalMeta, buyers: Table[str, BuyerRow]) -> None:
        self._meta = meta
        self.orders = cache.table(spaces.ORDERS, id_key, encode, decoder(OrderState))
        self.buyers = buyers
        self.unsettled = cache.sorted_space(spaces.UNSETTLED)  # sort_key(occurred_us, event_id) → order_id
        self.by_level1 = cache.sorted_space(spaces.BY_LEVEL1)  # prefixed(promoter) + order_id → b""
        self.parked = cache.table(spaces.PARKED_REFUNDS, id_key, encode, decoder(list[ParkedRefund]), keep=False)
        # Set by the engine for one prefetched batch: no parked refund was
        # stored when it began, so one not in the cache does not exist.
        self.none_parked_stored = False
        self.receipts = Receipts(cache, meta)  # receipt-clock orders: their own due index (SPEC §15)

    def get(self, order_id: str) -> OrderState | None:
        return self.orders.get(order_id)

    def save(self, state: OrderState) -> None:
        """``state`` (from ``get``) was changed in place."""
        self.orders.touch(state.order_id)

    def add(self, state: OrderState) -> None:
        self.orders.put(state.order_id, state)
        row = self.buyers.get(state.buyer_id)
        if row is None:
            row = BuyerRow()
        row.orders.append(OrderRef(state.occurred_us, state.order_id, state.rules_version))
        self.buyers.put(state.buyer_id, row)
        if not state.receipt_clock:  # a receipt-clock order is in the receipt due index (Receipts.add)
            self.unsettled.put(sort_key(state.occurred_us, state.event_id), id_key(state.order_id))

    def unsettled_of_buyer(self, buyer_id: str) -> list[OrderRef]:
        """The buyer's unsettled orders, in arrival order."""
        row = self.buyers.get(buyer_id)
        return row.orders if row is not None else []

    def won_by(self, promoters: set[str]) -> dict[str, OrderState]:
        """Unsettled orders won by these promoters at level 1."""
        won: dict[str, OrderState] = {}
        for promoter in sorted(promoters):
            lo = prefixed(promoter)
            for key, _ in self.by_level1.scan(lo, lo + b"\xff"):
                order_id = text(key[len(lo):])
                state = self.orders.get(order_id)
                require(state is not None and not state.settled, f"level-1 index names order {order_id!r}")
                won[order_id] = state  # type: ignore[assignment]
        return won

    def set_level1_all(self, state: OrderState, old: set[str], new: set[str]) -> None:
        """Move ``state`` in the level-1 index from promoters ``old`` to ``new`` (groups, SPEC §14)."""
        for promoter in sorted(old - new):
            self.by_level1.delete(prefixed(promoter) + id_key(state.order_id))
        for promoter in sorted(new - old):
            self.by_level1.put(prefixed(promoter) + id_key(state.order_id))

    def set_level1(self, state: OrderState, old: str | None, new: str | None) -> None:
        """Move ``state`` in the level-1 index from promoter ``old`` to ``new``."""
        if old == new:
            return
        if old is not None:
            self.by_level1.delete(prefixed(old) + id_key(state.order_id))
        if new is not None:
            self.by_level1.put(prefixed(new) + id_key(state.order_id))

    def due(self, as_of_us: int, lock_us: int, limit: int = 0) -> list[OrderState]:
        """Unsettled orders with occurred + lock ≤ as_of, in (occurred_us, event_id)
        order; the first ``limit`` of them when ``limit`` > 0."""
        order_ids = [text(order_id) for _, order_id in self.unsettled.scan(b"", _due_bound(as_of_us, lock_us), limit or None)]
        if not limit or len(order_ids) < limit:  # then the receipt-clock orders due, in (due, event_id) order
            order_ids += self.receipts.due_ids(as_of_us, limit - len(order_ids) if limit else None)
        self.orders.prefetch(order_ids)  # a few queries, not one per order
        due = []
        for order_id in order_ids:
            state = self.orders.get(order_id)
            require(state is not None and not state.settled, f"unsettled index names order {order_id!r}")
            due.append(state)
        self.buyers.prefetch({state.buyer_id for state in due})  # type: ignore[union-attr]
        return due  # type: ignore[return-value]

    def due_bound(self, as_of_us: int, lock_us: int) -> bytes:
        """The first settlement-index key dated after the last due instant."""
        return _due_bound(as_of_us, lock_us)

    def any_due(self, as_of_us: int, lock_us: int) -> bool:
        return bool(self.unsettled.scan(b"", _due_bound(as_of_us, lock_us), 1)) or bool(self.receipts.due_ids(as_of_us, 1))

    def withdraw(self, state: OrderState) -> bytes:
        """Take ``state`` out of its settlement index (a hold: SPEC §16) and
        save it; its key in the held index (its settlement-order key)."""
        key = sort_key(state.occurred_us, state.event_id)
        if state.receipt_clock:  # its key in the receipt due index, if it has one (SPEC §15)
            if state.due_us is not None:
                self.receipts.due.delete(sort_key(state.due_us, state.event_id))
        else:
            self.unsettled.delete(key)
        state.withdrawn = True
        self.save(state)
        return key

    def restore(self, state: OrderState) -> bytes:
        """Put ``state`` back in its settlement index (its holds ended) and
        save it; its key in the held index."""
        key = sort_key(state.occurred_us, state.event_id)
        if state.receipt_clock:  # due_us kept moving while held; its key goes back now
            if state.due_us is not None:
                self.receipts.due.put(sort_key(state.due_us, state.event_id), id_key(state.order_id))
        else:
            self.unsettled.put(key, id_key(state.order_id))
        state.withdrawn = False
        self.save(state)
        return key

    def freeze(self, state: OrderState) -> None:
        """No click, share or network walk re-evaluates ``state`` again (a
        rejected order: SPEC §16); it stays in the settlement index."""
        if state.decision.level1 is not None:
            self.by_level1.delete(prefixed(state.decision.level1.promoter_id) + id_key(state.order_id))
        for group in state.groups:  # commission groups (SPEC §14)
            self.by_level1.delete(prefixed(group.level1.promoter_id) + id_key(state.order_id))
        row = self.buyers.get(state.buyer_id)
        if row is not None:
            row.orders = [r for r in row.orders if r.order_id != state.order_id]
            self.buyers.put(state.buyer_id, row)

    def mark_settled(self, state: OrderState) -> None:
        was_awaiting = awaits_receipt(state)
        state.settled = True
        self.save(state)
        if state.receipt_clock:
            self.receipts.settled(state, was_awaiting)
        else:
            self.unsettled.delete(sort_key(state.occurred_us, state.event_id))
        if state.decision.level1 is not None:
            self.by_level1.delete(prefixed(state.decision.level1.promoter_id) + id_key(state.order_id))
        for group in state.groups:
            self.by_level1.delete(prefixed(group.level1.promoter_id) + id_key(state.order_id))
        row = self.buyers.get(state.buyer_id)
        require(row is not None, f"order {state.order_id!r} without its buyer's row")
        row.orders = [r for r in row.orders if r.order_id != state.order_id]  # type: ignore[union-attr]
        self.buyers.put(state.buyer_id, row)  # type: ignore[arg-type]

    # ------------------------------------------------------- parked refunds
    def park_refund(self, order_id: str, parked: ParkedRefund) -> None:
        waiting = (self.parked.get(order_id) or []) if self._may_be_parked(order_id) else []
        waiting.append(parked)
        self.parked.put(order_id, waiting)
        self._meta.parked_refunds += 1

    def unpark_refunds(self, order_id: str) -> list[ParkedRefund]:
        """The refunds that waited for ``order_id``, in arrival order."""
        if not self._may_be_parked(order_id):
            return []
        waiting = self.parked.get(order_id)
        if not waiting:
            return []
        self.parked.delete(order_id)
        self._meta.parked_refunds -= len(waiting)
        return waiting

    def _may_be_parked(self, order_id: str) -> bool:
        """False when no lookup is needed: none parked (the journal's row
        counts them), or none stored and this one not parked in this batch."""
        if not self._meta.parked_refunds:
            return False
        return not self.none_parked_stored or self.parked.cached(order_id)

    def parked_refund_count(self) -> int:
        return self._meta.parked_refunds


def _due_bound(as_of_us: int, lock_us: int) -> bytes:
    """The first unsettled-index key dated after the last due instant (occurred + lock ≤ as_of)."""
    return sort_key(as_of_us - lock_us + 1, "")
