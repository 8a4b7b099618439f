"""The orders a journal knows, and the indexes the engine decides with: every
order by id (refunds and clawbacks need settled ones too), the unsettled ones
(settle), each buyer's orders (a click re-evaluates them), the unsettled orders
each promoter wins at level 1 (a changed upline re-evaluates them), and the
refunds parked until their order arrives (SPEC §6)."""

from __future__ import annotations

from sys import intern

from ledger.engine.state import OrderState, ParkedRefund


class OrderBook:
    def __init__(self) -> None:
        self.orders: dict[str, OrderState] = {}
        self.unsettled: dict[str, OrderState] = {}
        self.by_buyer: dict[str, list[OrderState]] = {}
        self.by_level1: dict[str, dict[str, None]] = {}  # promoter → unsettled order ids
        self.parked_refunds: dict[str, list[ParkedRefund]] = {}  # order_id → refunds waiting for it

    def get(self, order_id: str) -> OrderState | None:
        return self.orders.get(order_id)

    def add(self, state: OrderState) -> None:
        self.orders[state.order_id] = state
        self.unsettled[state.order_id] = state
        buyer = self.by_buyer.get(state.buyer_id)
        if buyer is None:
            buyer = self.by_buyer[intern(state.buyer_id)] = []
        buyer.append(state)

    def of_buyer(self, buyer_id: str) -> list[OrderState]:
        """The buyer's orders in arrival order, settled ones included."""
        return self.by_buyer.get(buyer_id, [])

    def won_by(self, promoters: set[str]) -> dict[str, OrderState]:
        """Unsettled orders won by these promoters at level 1."""
        won: dict[str, OrderState] = {}
        for promoter in sorted(promoters):
            for order_id in self.by_level1.get(promoter, ()):
                won[order_id] = self.unsettled[order_id]
        return won

    def set_level1(self, state: OrderState, old: str | None, new: str | None) -> None:
        """Move ``state`` in the level-1 index from promoter ``old`` to ``new``."""
        if old is not None and old != new:
            self.by_level1[old].pop(state.order_id, None)
        if new is not None:
            self.by_level1.setdefault(new, {})[state.order_id] = None

    def due(self, as_of_us: int, lock_us: int) -> list[OrderState]:
        """Unsettled orders with occurred + lock ≤ as_of, in (occurred_us, event_id) order."""
        due = [s for s in self.unsettled.values() if s.occurred_us + lock_us <= as_of_us]
        due.sort(key=lambda s: (s.occurred_us, s.event_id))
        return due

    def mark_settled(self, state: OrderState) -> None:
        state.settled = True
        del self.unsettled[state.order_id]
        if state.decision.level1 is not None:
            self.by_level1[state.decision.level1.promoter_id].pop(state.order_id, None)

    # ------------------------------------------------------- parked refunds
    def park_refund(self, order_id: str, parked: ParkedRefund) -> None:
        self.parked_refunds.setdefault(order_id, []).append(parked)

    def unpark_refunds(self, order_id: str) -> list[ParkedRefund]:
        """The refunds that waited for ``order_id``, in arrival order."""
        return self.parked_refunds.pop(order_id, [])

    def parked_refund_count(self) -> int:
        return sum(len(v) for v in self.parked_refunds.values())
