"""The ledger's state machine: wire events and commands in, transfers out.

Deterministic and free of I/O and wall clock: the same sequence of inputs gives
the same outcomes and the same transfers, byte for byte. State is per buyer
(clicks, orders) plus the global share network; every change re-evaluates only
the unsettled orders it can affect and posts the difference as new transfers
(reversal + accrual), never editing what was posted (SPEC §8, DESIGN "Core ideas").
"""

from __future__ import annotations

from bisect import bisect_left, insort
from sys import intern
from typing import Mapping, NamedTuple


from ledger import attribution
from ledger.attribution import ClickRef, last_binding_start
from ledger.click_spill import BuyerClicks, ClickSpill
from ledger.commission import after_refunds, capped_levels, order_totals
from ledger.config import Rules
from ledger.limits import DEFAULT_LIMITS, Limits
from ledger.network import Network, ShareRef
from ledger.records import (
    ADJUSTMENT,
    EXPENSE,
    PAID,
    PAYABLE,
    PENDING,
    DeadLetter,
    Source,
    Transfer,
    fold_transfer,
)
from schemas import reasons
from schemas.decode import Decoded, Rejected, decode_event
from schemas.events import Click, Order, Refund, Share, order_currency

# A network walk longer than this (shares after the change point) is deferred
# to the end of the batch: in-order shares walk a few steps at once, a backfill
# of old shares walks once per batch instead of once per share.
IMMEDIATE_WALK_MAX = 64

# Old clicks leave memory (ledger.click_spill) at the end of a batch once more
# than limits.resident_clicks_max are resident (~85 bytes each): those dated
# before the watermark (the latest click or order instant) minus the longest
# attribution window minus limits.late_slack_us, in whole limits.evict_bucket_us
# buckets. A buyer's clicks come back before any decision that could need them,
# so this changes memory, never results.

ACCEPTED = "accepted"
PARKED = "parked"
DUPLICATE = "duplicate"
DEAD_LETTER = "dead_letter"


class Outcome(NamedTuple):
    status: str  # accepted | parked | duplicate | dead_letter
    event_id: str | None
    transfers: list[Transfer]
    dead_letter: DeadLetter | None = None  # when status is dead_letter
    released: list[DeadLetter] = []  # parked refunds rejected by this event


class Beneficiary(NamedTuple):
    promoter_id: str
    amount: int  # before refunds


class Attribution(NamedTuple):
    """Who an order pays and how much, before refunds."""

    click: ClickRef | None
    level1: Beneficiary | None
    level2: Beneficiary | None


class Params(NamedTuple):
    """One rules version, compiled for the hot path (durations in µs)."""

    model: str
    window_us: int
    lock_us: int
    deny_self_referral: bool
    rates: tuple[int, int, int, int]  # level1/level2 default rate, level1/level2 cap
    order_cap_bp: int
    order_cap_amount: int | None

    @classmethod
    def of(cls, rules: Rules) -> "Params":
        return cls(
            rules.model, rules.window_us, rules.attribution_lock_us, rules.self_referral == "deny",
            (rules.level1_rate_bp, rules.level2_rate_bp, rules.level1_cap_bp, rules.level2_cap_bp),
            rules.order_cap_bp, rules.order_cap_amount,
        )


NO_ATTRIBUTION = Attribution(None, None, None)


class ParkedRefund(NamedTuple):
    refund: Refund
    raw: bytes
    source: Source


class OrderState:
    """What the ledger keeps of an order: ids, instant and amounts, not its lines."""

    __slots__ = (
        "order_id", "event_id", "buyer_id", "merchant_id", "currency", "occurred_us",
        "rules_version", "commissionable", "level1", "level2", "order_cap",
        "refunded", "refunds", "settled", "attribution", "posted1", "posted2",
    )

    def __init__(self, order: Order, occurred_us: int, rules_version: int, totals: tuple[int, int, int, int]):
        self.order_id = order.order_id
        self.event_id = order.event_id
        # Interned: one copy per buyer, merchant and currency, not one per order.
        self.buyer_id = intern(order.buyer_id)
        self.merchant_id = intern(order.merchant_id)
        self.currency = intern(order_currency(order))
        self.occurred_us = occurred_us
        self.rules_version = rules_version
        # C; Σ floor(a × r / 10000) per level, before the order cap; K
        self.commissionable, self.level1, self.level2, self.order_cap = totals
        self.refunded = 0  # R
        self.refunds: tuple[tuple[str, int], ...] = ()  # (refund_id, amount) applied
        self.settled = False
        self.attribution = NO_ATTRIBUTION
        # What is currently posted per level: (promoter_id, amount) or None.
        self.posted1: tuple[str, int] | None = None
        self.posted2: tuple[str, int] | None = None

    @property
    def sort_key(self) -> tuple[int, str]:
        return (self.occurred_us, self.event_id)


class BuyerState:
    __slots__ = ("clicks", "orders", "spilled_until")

    def __init__(self) -> None:
        self.clicks: list[ClickRef] = []  # resident known-share clicks, sorted
        self.orders: list[OrderState] = []
        # (occurred_us, event_id) ≥ every click of this buyer in the spill, or None.
        # Resident clicks after it, plus the last binding start before it for each
        # customer_lock period, decide exactly what all the clicks would decide
        # for any order dated after it.
        self.spilled_until: tuple[int, str] | None = None


class Engine:
    """All ledger state, rebuilt by replaying the journal (see ledger.app)."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.rules: list[Rules] = []  # index = version − 1
        self.params: list[Params] = []  # the same, compiled
        self.seen: dict[str, bytes] = {}  # event_id → content fingerprint
        self.orders: dict[str, OrderState] = {}
        self.unsettled: dict[str, OrderState] = {}
        self.refund_ids: set[str] = set()
        self.parked_refunds: dict[str, list[ParkedRefund]] = {}
        self.buyers: dict[str, BuyerState] = {}
        self.parked_clicks: dict[str, list[tuple[str, ClickRef]]] = {}
        self.network = Network()
        self.batching = False
        self._deferred_start: tuple[int, str] | None = None
        self.by_level1: dict[str, dict[str, None]] = {}  # promoter → unsettled order ids
        # (promoter_id, currency) → [pending, payable, paid]
        self.balances: dict[tuple[str, str], list[int]] = {}
        self.spill = ClickSpill()
        self.resident_clicks = 0
        self.watermark_us: int | None = None  # latest click or order instant
        self._click_buckets: dict[int, set[str]] = {}  # bucket → buyers with clicks dated in it

    # ------------------------------------------------------------------ rules
    @property
    def rules_version(self) -> int:
        return len(self.rules)

    @property
    def current_rules(self) -> Rules:
        assert self.rules, "no rules adopted yet"
        return self.rules[-1]

    def adopt_rules(self, rules: Rules) -> int | None:
        """Put ``rules`` in force; return the new version, or None if unchanged."""
        if self.rules and self.rules[-1] == rules:
            return None
        params = Params.of(rules)
        if params.model == "customer_lock" and all(p.lock_us != params.lock_us for p in self.params if p.model == "customer_lock"):
            # Spilled buyers kept the last binding start for the old lock periods only.
            for buyer_id, buyer in self.buyers.items():
                if buyer.spilled_until is not None:
                    self._unspill(buyer_id, buyer)
        self.rules.append(rules)
        self.params.append(params)
        return len(self.rules)

    # ------------------------------------------------------------------ input
    def ingest(self, raw: bytes, source: Source) -> Outcome:
        """Apply one wire event. Never raises for bad input."""
        decoded = decode_event(raw)
        if isinstance(decoded, Rejected):
            return self._dead(decoded.reason, decoded.detail, raw, source, None)
        return self.apply(decoded, raw, source)

    def apply(self, decoded: Decoded, raw: bytes, source: Source) -> Outcome:
        event = decoded.event
        event_id = event.event_id
        seen = self.seen.get(event_id)
        if seen is not None:
            if seen == decoded.fingerprint:
                return Outcome(DUPLICATE, event_id, [])
            return self._dead(
                reasons.CONFLICTING_DUPLICATE,
                "event_id already accepted with other content", raw, source, None,
            )
        if isinstance(event, Click):
            self.seen[event_id] = decoded.fingerprint
            return self._click(event, decoded.occurred_us)
        if isinstance(event, Order):
            if event.order_id in self.orders:
                return self._dead_keep(reasons.DUPLICATE_BUSINESS_ID, f"order_id {event.order_id!r} already used", raw, source, decoded)
            self.seen[event_id] = decoded.fingerprint
            return self._order(event, decoded.occurred_us)
        if isinstance(event, Share):
            if event.share_id in self.network.shares:
                return self._dead_keep(reasons.DUPLICATE_BUSINESS_ID, f"share_id {event.share_id!r} already used", raw, source, decoded)
            self.seen[event_id] = decoded.fingerprint
            return self._share(event, decoded.occurred_us)
        assert isinstance(event, Refund)
        if event.refund_id in self.refund_ids:
            return self._dead_keep(reasons.DUPLICATE_BUSINESS_ID, f"refund_id {event.refund_id!r} already used", raw, source, decoded)
        self.seen[event_id] = decoded.fingerprint
        return self._refund(event, raw, source)

    def _dead(self, reason: str, detail: str, raw: bytes, source: Source, event_id: str | None) -> Outcome:
        return Outcome(DEAD_LETTER, event_id, [], DeadLetter(reason, detail, source, raw, event_id))

    def _dead_keep(self, reason: str, detail: str, raw: bytes, source: Source, decoded: Decoded) -> Outcome:
        """A dead letter that keeps its event_id (SPEC §8)."""
        assert reason in reasons.KEEPS_EVENT_ID
        event_id = decoded.event.event_id
        self.seen[event_id] = decoded.fingerprint
        return self._dead(reason, detail, raw, source, event_id)

    # ----------------------------------------------------------------- clicks
    def _buyer(self, buyer_id: str) -> BuyerState:
        buyer = self.buyers.get(buyer_id)
        if buyer is None:
            buyer = self.buyers[intern(buyer_id)] = BuyerState()
        return buyer

    def _click(self, click: Click, occurred_us: int) -> Outcome:
        share = self.network.shares.get(click.share_id)
        if share is None:
            ref = ClickRef(occurred_us, click.event_id, click.share_id)
            self.parked_clicks.setdefault(click.share_id, []).append((click.buyer_id, ref))
            return Outcome(PARKED, click.event_id, [])
        # The share's own share_id string: one copy per share, not per click.
        ref = ClickRef(occurred_us, click.event_id, share.share_id)
        buyer = self._add_click(click.buyer_id, ref)
        transfers: list[Transfer] = []
        self._reevaluate(self._affected_by_click(buyer, ref), transfers)
        return Outcome(ACCEPTED, click.event_id, transfers)

    def _add_click(self, buyer_id: str, ref: ClickRef) -> BuyerState:
        buyer_id = intern(buyer_id)  # the buckets hold the one copy, not one per click
        buyer = self._buyer(buyer_id)
        spilled = buyer.spilled_until
        if spilled is not None and ref.occurred_us <= spilled[0] and (ref.occurred_us, ref.event_id) <= spilled:
            self._unspill(buyer_id, buyer)  # a late click rewrites the history before the boundary
        insort(buyer.clicks, ref)
        self.resident_clicks += 1
        if self.watermark_us is None or ref.occurred_us > self.watermark_us:
            self.watermark_us = ref.occurred_us
        bucket_us = self.limits.evict_bucket_us
        bucket = self._click_buckets.get(ref.occurred_us // bucket_us)
        if bucket is None:
            bucket = self._click_buckets[ref.occurred_us // bucket_us] = set()
        bucket.add(buyer_id)
        return buyer

    def clicks_of(self, buyer_id: str) -> list[ClickRef]:
        """All of a buyer's known-share clicks, sorted (brought back into memory)."""
        buyer = self.buyers.get(buyer_id)
        if buyer is None:
            return []
        if buyer.spilled_until is not None:
            self._unspill(buyer_id, buyer)
        return buyer.clicks

    def _affected_by_click(self, buyer: BuyerState, ref: ClickRef) -> list[OrderState]:
        """The buyer's unsettled orders whose attribution this click can change."""
        affected = []
        click_us = ref.occurred_us
        for state in buyer.orders:
            if state.settled or state.occurred_us < click_us:
                continue
            params = self.params[state.rules_version - 1]
            if params.model == "customer_lock" or state.occurred_us <= click_us + params.window_us:
                affected.append(state)
        return affected

    # ----------------------------------------------------------------- shares
    def _share(self, share: Share, occurred_us: int) -> Outcome:
        ref = ShareRef(occurred_us, share.event_id, share.share_id, share.promoter_id, share.parent_share_id)
        start = self.network.add(ref, self._deferred_start)
        affected: dict[str, OrderState] = {}
        if start is not None:
            if self.batching and (self._deferred_start is not None or self.network.walk_length(start) > IMMEDIATE_WALK_MAX):
                self._deferred_start = start  # one long walk at the end of the batch
            else:
                affected = self._orders_of(self.network.recompute_from(start))
        for buyer_id, click in self.parked_clicks.pop(share.share_id, ()):
            click = click._replace(share_id=share.share_id)
            buyer = self._add_click(buyer_id, click)
            for state in self._affected_by_click(buyer, click):
                affected[state.order_id] = state
        transfers: list[Transfer] = []
        self._reevaluate(list(affected.values()), transfers)
        return Outcome(ACCEPTED, share.event_id, transfers)

    def _orders_of(self, promoters: set[str]) -> dict[str, OrderState]:
        """Unsettled orders won by these promoters at level 1."""
        affected: dict[str, OrderState] = {}
        for promoter in sorted(promoters):
            for order_id in self.by_level1.get(promoter, ()):
                affected[order_id] = self.unsettled[order_id]
        return affected

    # ---------------------------------------------------------------- batches
    def begin_batch(self) -> None:
        """Within a batch, a late share that changes the network marks where
        the walk must restart instead of walking at once: one walk per batch,
        not one per out-of-order share (which is quadratic on a backfill)."""
        assert not self.batching
        self.batching = True

    def end_batch(self) -> tuple[bool, list[Transfer]]:
        """Walk the network once if a share asked for it and re-evaluate the
        orders whose upline changed. Returns (walked, transfers)."""
        assert self.batching
        self.batching = False
        start, self._deferred_start = self._deferred_start, None
        if start is None:
            self._spill_old_clicks()
            return False, []
        transfers: list[Transfer] = []
        self._reevaluate(list(self._orders_of(self.network.recompute_from(start)).values()), transfers)
        self._spill_old_clicks()
        return True, transfers

    # ------------------------------------------------------------ old clicks
    def _spill_old_clicks(self) -> None:
        """Move clicks older than the attribution horizon out of memory."""
        limits = self.limits
        if self.resident_clicks <= limits.resident_clicks_max or self.watermark_us is None:
            return
        window_us = max((p.window_us for p in self.params if p.model != "customer_lock"), default=0)
        cutoff_bucket = (self.watermark_us - window_us - limits.late_slack_us) // limits.evict_bucket_us
        old = [b for b in self._click_buckets if b < cutoff_bucket]
        if not old:
            return
        cutoff_us = cutoff_bucket * limits.evict_bucket_us
        locks = sorted({p.lock_us for p in self.params if p.model == "customer_lock"})
        batch: list[BuyerClicks] = []
        buyers = set().union(*(self._click_buckets.pop(bucket) for bucket in old))
        spilled = 0
        for buyer_id in buyers:
            spilled += self._spill_buyer(buyer_id, cutoff_us, locks, batch)
        self.spill.put(batch)
        self.resident_clicks -= spilled
        assert self.resident_clicks >= 0 and self.spill.count >= spilled

    def _spill_buyer(self, buyer_id: str, cutoff_us: int, locks: list[int], batch: list[BuyerClicks]) -> int:
        """Move one buyer's clicks before ``cutoff_us`` into ``batch``; return how many."""
        buyer = self.buyers[buyer_id]
        clicks = buyer.clicks
        n = bisect_left(clicks, (cutoff_us,))  # first click at or after cutoff_us
        if n == 0:
            return 0
        before = clicks[:n] if n < len(clicks) else clicks
        last = before[-1]
        if locks:
            # customer_lock: the last binding start before the boundary stays (per lock period).
            kept = sorted({last_binding_start(before, lock) for lock in locks})
            if len(kept) > 1 and any(last_binding_start(kept, lock) != last_binding_start(before, lock) for lock in locks):
                return 0  # rules with several lock periods disagree on what to keep: keep it all
            before = [c for c in before if c not in kept]
            if not before:
                return 0
            buyer.clicks = kept + clicks[n:]
        else:
            buyer.clicks = clicks[n:] if n < len(clicks) else []
        batch.append((buyer_id, before))
        boundary = (last.occurred_us, last.event_id)
        if buyer.spilled_until is None or boundary > buyer.spilled_until:
            buyer.spilled_until = boundary
        return len(before)

    def _unspill(self, buyer_id: str, buyer: BuyerState) -> None:
        """Bring all of a buyer's spilled clicks back into memory."""
        shares = self.network.shares
        loaded = [ClickRef(us, event_id, shares[share_id].share_id) for us, event_id, share_id in self.spill.take(buyer_id)]
        buyer.spilled_until = None
        if not loaded:
            return
        buyer.clicks = sorted(buyer.clicks + loaded)
        self.resident_clicks += len(loaded)
        self._click_buckets.setdefault(min(c.occurred_us for c in loaded) // self.limits.evict_bucket_us, set()).add(buyer_id)

    # ----------------------------------------------------------------- orders
    def _order(self, order: Order, occurred_us: int) -> Outcome:
        params = self.params[-1]
        totals = order_totals(order.lines, params.rates, params.order_cap_bp, params.order_cap_amount)
        state = OrderState(order, occurred_us, self.rules_version, totals)
        if self.watermark_us is None or occurred_us > self.watermark_us:
            self.watermark_us = occurred_us
        self.orders[order.order_id] = state
        self.unsettled[order.order_id] = state
        self._buyer(order.buyer_id).orders.append(state)
        transfers: list[Transfer] = []
        self._reevaluate([state], transfers)
        released: list[DeadLetter] = []
        for parked in self.parked_refunds.pop(order.order_id, ()):
            letter = self._apply_refund(state, parked.refund, parked.raw, parked.source, transfers)
            if letter is not None:
                released.append(letter)
        return Outcome(ACCEPTED, order.event_id, transfers, None, released)

    # ---------------------------------------------------------------- refunds
    def _refund(self, refund: Refund, raw: bytes, source: Source) -> Outcome:
        state = self.orders.get(refund.order_id)
        self.refund_ids.add(refund.refund_id)
        if state is None:
            self.parked_refunds.setdefault(refund.order_id, []).append(ParkedRefund(refund, raw, source))
            return Outcome(PARKED, refund.event_id, [])
        transfers: list[Transfer] = []
        letter = self._apply_refund(state, refund, raw, source, transfers)
        if letter is not None:
            return Outcome(DEAD_LETTER, refund.event_id, [], letter)
        return Outcome(ACCEPTED, refund.event_id, transfers)

    def _apply_refund(self, state: OrderState, refund: Refund, raw: bytes, source: Source, transfers: list[Transfer]) -> DeadLetter | None:
        """Apply or reject a refund of a known order; a rejection releases its refund_id."""
        if refund.buyer_id != state.buyer_id:
            self.refund_ids.discard(refund.refund_id)
            return DeadLetter(reasons.REFUND_BUYER_MISMATCH, f"order {state.order_id!r} belongs to another buyer", source, raw, refund.event_id)
        if state.refunded + refund.amount > state.commissionable:
            self.refund_ids.discard(refund.refund_id)
            detail = f"refunds would total {state.refunded + refund.amount} > commissionable {state.commissionable}"
            return DeadLetter(reasons.REFUND_EXCEEDS_ORDER, detail, source, raw, refund.event_id)
        state.refunded += refund.amount
        state.refunds += ((refund.refund_id, refund.amount),)
        self._post(state, state.attribution, transfers)
        return None

    # ------------------------------------------------------------- evaluation
    def attribute(self, state: OrderState) -> Attribution:
        """Who wins ``state``'s order now, and the amounts before refunds."""
        params = self.params[state.rules_version - 1]
        buyer = self.buyers.get(state.buyer_id)
        if buyer is None:
            return NO_ATTRIBUTION
        if buyer.spilled_until is not None:
            earliest_us = state.occurred_us if params.model == "customer_lock" else state.occurred_us - params.window_us
            if earliest_us <= buyer.spilled_until[0]:
                self._unspill(state.buyer_id, buyer)
        if not buyer.clicks:
            return NO_ATTRIBUTION
        click = attribution.winning_click(params.model, buyer.clicks, state.occurred_us, params.window_us, params.lock_us)
        if click is None:
            return NO_ATTRIBUTION
        p1 = self.network.shares[click.share_id].promoter_id
        upline = self.network.level2_for(p1, state.occurred_us)
        l1, l2 = capped_levels(state.level1, state.level2 if upline else 0, state.order_cap)
        if params.deny_self_referral:
            if state.buyer_id == p1:
                l1 = l2 = 0
            elif upline is not None and state.buyer_id == upline.promoter_id:
                l2 = 0
        level2 = Beneficiary(upline.promoter_id, l2) if upline is not None else None
        return Attribution(click, Beneficiary(p1, l1), level2)

    def _reevaluate(self, states, transfers: list[Transfer]) -> None:
        if len(states) > 1:
            states = sorted(states, key=lambda s: (s.occurred_us, s.event_id))
        for state in states:
            assert not state.settled
            new = self.attribute(state)
            old_l1 = state.attribution.level1
            if old_l1 is not None and (new.level1 is None or new.level1.promoter_id != old_l1.promoter_id):
                self.by_level1[old_l1.promoter_id].pop(state.order_id, None)
            if new.level1 is not None:
                self.by_level1.setdefault(new.level1.promoter_id, {})[state.order_id] = None
            state.attribution = new
            self._post(state, new, transfers)

    def _post(self, state: OrderState, attr: Attribution, transfers: list[Transfer]) -> None:
        """Post the difference between what ``attr`` pays now and what is posted."""
        state.posted1 = self._post_level(state, 1, attr.level1, state.posted1, transfers)
        state.posted2 = self._post_level(state, 2, attr.level2, state.posted2, transfers)

    def _post_level(self, state: OrderState, level: int, beneficiary: Beneficiary | None,
                    have: tuple[str, int] | None, transfers: list[Transfer]) -> tuple[str, int] | None:
        """Move one level from what is posted (``have``) to what is due; return it."""
        bucket = PAYABLE if state.settled else PENDING
        want = None
        if beneficiary is not None:
            amount = after_refunds(beneficiary.amount, state.commissionable, state.refunded)
            if amount:
                want = (beneficiary.promoter_id, amount)
        if want == have:
            return want
        if have is not None and (want is None or want[0] != have[0]):
            self._move(state, level, have[0], have[1], bucket, EXPENSE, transfers)
            have = None
        if want is not None:
            delta = want[1] - (have[1] if have is not None else 0)
            if delta > 0:
                self._move(state, level, want[0], delta, EXPENSE, bucket, transfers)
            elif delta < 0:
                self._move(state, level, want[0], -delta, bucket, EXPENSE, transfers)
        return want

    def _move(self, state: OrderState, level: int, promoter_id: str, amount: int, debit: str, credit: str, transfers: list[Transfer]) -> None:
        if debit == EXPENSE:
            kind = "accrual"
        elif debit == PENDING and credit == EXPENSE:
            kind = "reversal"
        elif debit == PAYABLE and credit == EXPENSE:
            kind = "clawback"
        else:
            kind = "settlement"
        transfer = Transfer(
            kind, promoter_id, state.currency, amount, debit, credit,
            state.order_id, level, state.merchant_id, state.rules_version,
        )
        self._book(transfer)
        transfers.append(transfer)

    def _book(self, transfer: Transfer) -> None:
        """Update the live balances with one transfer (both legs)."""
        assert transfer.amount_minor > 0 and transfer.debit != transfer.credit, transfer
        fold_transfer(self.balances, transfer)

    # --------------------------------------------------------------- commands
    def settle(self, as_of_us: int) -> tuple[list[str], list[Transfer]]:
        """Settle every known order with occurred + lock_period ≤ as_of (SPEC §7)."""
        lock_us = self.current_rules.settlement_lock_us
        assert lock_us >= 0
        due = [s for s in self.unsettled.values() if s.occurred_us + lock_us <= as_of_us]
        due.sort(key=lambda s: (s.occurred_us, s.event_id))
        transfers: list[Transfer] = []
        for state in due:
            for level, posted in ((1, state.posted1), (2, state.posted2)):
                if posted is not None:
                    self._move(state, level, posted[0], posted[1], PENDING, PAYABLE, transfers)
            state.settled = True
            del self.unsettled[state.order_id]
            if state.attribution.level1 is not None:
                self.by_level1[state.attribution.level1.promoter_id].pop(state.order_id, None)
        return [s.order_id for s in due], transfers

    def payout(self, payables: Mapping[tuple[str, str], int]) -> list[Transfer]:
        """Pay every (promoter, currency) whose payable (across all journals, as
        given) is > 0 and ≥ min_payout; sorted by (promoter, currency)."""
        min_payout = self.current_rules.min_payout
        transfers: list[Transfer] = []
        for (promoter_id, currency), payable in sorted(payables.items()):
            if payable > 0 and payable >= min_payout:
                transfer = Transfer("payout", promoter_id, currency, payable, PAYABLE, PAID, rules_version=self.rules_version)
                self._book(transfer)
                transfers.append(transfer)
        return transfers

    def book_payout(self, transfers: list[Transfer]) -> None:
        """Replay a recorded payout: its amounts were decided from every
        journal's balances at the time, so they are booked, not recomputed."""
        for transfer in transfers:
            assert transfer.kind == "payout" and transfer.debit == PAYABLE and transfer.credit == PAID, transfer
            self._book(transfer)

    def adjust(self, promoter_id: str, currency: str, amount_minor: int) -> list[Transfer]:
        """A manual adjustment to payable (positive: bonus; negative: correction)."""
        assert amount_minor != 0
        debit, credit = (ADJUSTMENT, PAYABLE) if amount_minor > 0 else (PAYABLE, ADJUSTMENT)
        transfer = Transfer("adjustment", promoter_id, currency, abs(amount_minor), debit, credit, rules_version=self.rules_version)
        self._book(transfer)
        return [transfer]

    # ----------------------------------------------------------------- views
    def parked_counts(self) -> tuple[int, int]:
        """(parked clicks, parked refunds) right now."""
        return (
            sum(len(v) for v in self.parked_clicks.values()),
            sum(len(v) for v in self.parked_refunds.values()),
        )
