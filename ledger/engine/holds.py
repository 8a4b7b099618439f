"""Holds, review and rejection (SPEC §16): finance stops doubtful money
without losing track of it.

An order with a hold in force (``hold order``, or a review hold placed by a
settle) leaves the settlement index for the ``HELD`` space, so a settle's due
scan never meets it and a bulk settle's batches stay exact; a release puts it
back, approved. A rejected order posts its reversal (or clawback) at once,
leaves every re-evaluation index (no click, share or walk reaches it again)
and settles at 0 when due. Promoter holds live in the treasury journal, where
payouts are decided. Holds move no money."""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from ledger.engine import spaces
from ledger.engine.codecs import decoder, encode, id_key
from ledger.engine.orders import OrderBook
from ledger.engine.posting import post
from ledger.engine.groups import post_groups
from ledger.engine.state import NO_DECISION, Beneficiary, HoldNote, OrderHolds, OrderState, Params
from ledger.engine.tables import StateCache
from ledger.errors import ConflictError, NotFoundError
from ledger.records import Transfer
from ledger.statestore import text

ORDER = "order"
PROMOTER = "promoter"
REVIEW = "review"
SELF_REFERRAL = "self_referral"
AMOUNT_OVER = "amount_over"
SETTLE_ACTOR = "settle"  # who places a review hold

_decode_notes = decoder(list[HoldNote])


Levels = tuple[Optional[Beneficiary], Optional[Beneficiary]]  # (level 1, level 2) of one group


def levels_of(state: OrderState) -> list[Levels]:
    """The beneficiaries of each of the order's commission groups (SPEC §14):
    its groups under ``scope = "product"``, else its one decision."""
    if state.groups:
        return [(g.level1, g.level2) for g in state.groups]
    return [(state.decision.level1, state.decision.level2)]


def review_reasons(state: OrderState, groups: Sequence[Levels], params: Params) -> list[str]:
    """SPEC §16's review conditions, in the order the SPEC names them:
    ``self_referral`` when the buyer is the L1 or L2 beneficiary of any group
    (whatever that level pays), ``amount_over`` when Σ over the groups of
    L1 + L2 (after caps and deny, before refunds) is strictly above the bound."""
    reasons: list[str] = []
    if params.review_self_referral:
        buyer = state.buyer_id
        for level1, level2 in groups:
            if (level1 is not None and level1.promoter_id == buyer) or (
                    level2 is not None and level2.promoter_id == buyer):
                reasons.append(SELF_REFERRAL)
                break
    bound = params.review_amount_over_minor
    if bound > 0:
        total = 0
        for level1, level2 in groups:
            if level1 is not None:
                total += level1.amount_minor
            if level2 is not None:
                total += level2.amount_minor
        if total > bound:
            reasons.append(AMOUNT_OVER)
    return reasons


class Holds:
    """The §16 state of one journal: per order (holds, review, approval,
    rejection), the held orders in settlement order, and promoter holds."""

    def __init__(self, cache: StateCache, orders: OrderBook) -> None:
        self._orders = orders
        self.flags = cache.table(spaces.ORDER_HOLDS, id_key, encode, decoder(OrderHolds))
        self.held = cache.sorted_space(spaces.HELD)  # sort key → order_id
        self.promoters = cache.sorted_space(spaces.PROMOTER_HOLDS)  # promoter_id → encoded list[HoldNote]
        # What the settle being applied held for review: (order_id, reasons).
        self.reviewed: list[tuple[str, list[str]]] = []

    # ------------------------------------------------------------- orders
    def is_rejected(self, order_id: str) -> bool:
        flags = self.flags.get(order_id)
        return flags is not None and flags.rejected

    def _known(self, order_id: str) -> OrderState:
        state = self._orders.get(order_id)
        if state is None:
            raise NotFoundError(f"order {order_id!r} is not known")
        return state

    def hold_order(self, order_id: str, actor: str, reason: str, position: int) -> None:
        state = self._known(order_id)
        flags = self.flags.get(order_id)
        if flags is not None and flags.rejected:
            raise ConflictError(f"order {order_id!r} is rejected")
        if state.settled:
            raise ConflictError(f"order {order_id!r} is already settled")
        if flags is None:
            flags = OrderHolds()
        if not flags.in_force():
            self.held.put(self._orders.withdraw(state), id_key(order_id))
        flags.notes.append(HoldNote("hold", actor, reason, position))
        flags.holds += 1
        self.flags.put(order_id, flags)

    def release_order(self, order_id: str, actor: str, reason: str, position: int) -> None:
        state = self._known(order_id)
        flags = self.flags.get(order_id)
        if flags is None or not flags.in_force():
            raise ConflictError(f"order {order_id!r} has no hold in force")
        self.held.delete(self._orders.restore(state))
        flags.notes.append(HoldNote("release", actor, reason, position))
        flags.holds = 0
        flags.review = []
        flags.approved = True
        self.flags.put(order_id, flags)

    def reject_order(self, order_id: str, actor: str, reason: str, position: int, transfers: list[Transfer]) -> None:
        """The order's commission to 0 for good: what is posted is reversed
        (pending) or clawed back (payable) into ``transfers``; its holds end."""
        state = self._known(order_id)
        flags = self.flags.get(order_id)
        if flags is not None and flags.rejected:
            raise ConflictError(f"order {order_id!r} is already rejected")
        if flags is None:
            flags = OrderHolds()
        if state.groups or state.posted:  # commission groups (SPEC §14): every (level, promoter) to 0
            post_groups(state, transfers, ())
        else:
            post(state, NO_DECISION, transfers)
        self._orders.save(state)
        if not state.settled:
            if flags.in_force():
                self.held.delete(self._orders.restore(state))  # settles at 0 when due
            self._orders.freeze(state)
        flags.notes.append(HoldNote("reject", actor, reason, position))
        flags.holds = 0
        flags.review = []
        flags.rejected = True
        self.flags.put(order_id, flags)

    def review_at_settle(self, state: OrderState, params: Params, position: int) -> bool:
        """Whether a due order is held for review instead of settled (and hold it)."""
        reasons = review_reasons(state, levels_of(state), params)
        if not reasons:
            return False
        flags = self.flags.get(state.order_id)
        if flags is not None and (flags.rejected or flags.approved):
            return False
        if flags is None:
            flags = OrderHolds()
        self.held.put(self._orders.withdraw(state), id_key(state.order_id))
        flags.notes.append(HoldNote(REVIEW, SETTLE_ACTOR, ",".join(reasons), position))
        flags.review = reasons
        self.flags.put(state.order_id, flags)
        self.reviewed.append((state.order_id, reasons))
        return True

    def waiting(self, due_bound: bytes, as_of_us: int) -> list[str]:
        """Held orders (any hold) due as of ``as_of_us``, in settlement order,
        but those this settle has just held for review. An order-clock order is
        due when its settlement key is below ``due_bound``; a receipt-clock one
        (SPEC §15) when its due instant is at or before ``as_of_us``."""
        fresh = {order_id for order_id, _ in self.reviewed}
        out = []
        for key, value in self.held.scan(b""):
            order_id = text(value)
            if order_id in fresh:
                continue
            state = self._orders.get(order_id)
            if state is not None and state.receipt_clock:
                if state.due_us is not None and state.due_us <= as_of_us:
                    out.append(order_id)
            elif key < due_bound:
                out.append(order_id)
        return out

    def held_order_ids(self) -> list[str]:
        """Every order with a hold in force, in settlement order."""
        return [text(v) for _, v in self.held.scan(b"")]

    # ---------------------------------------------------------- promoters
    def promoter_notes(self, promoter_id: str) -> list[HoldNote]:
        key = id_key(promoter_id)
        rows = self.promoters.scan(key, key + b"\x00", 1)
        return _decode_notes(rows[0][1]) if rows else []

    def hold_promoter(self, promoter_id: str, actor: str, reason: str, position: int) -> None:
        notes = self.promoter_notes(promoter_id)
        notes.append(HoldNote("hold", actor, reason, position))
        self.promoters.put(id_key(promoter_id), encode(notes))

    def release_promoter(self, promoter_id: str, actor: str, reason: str, position: int) -> None:
        if not self.promoter_notes(promoter_id):
            raise ConflictError(f"promoter {promoter_id!r} has no hold in force")
        self.promoters.delete(id_key(promoter_id))

    def held_promoters(self) -> dict[str, list[HoldNote]]:
        """Every promoter with a hold in force (a scan of the holds alone)."""
        return {text(k): _decode_notes(v) for k, v in self.promoters.scan(b"")}
