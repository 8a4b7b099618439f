"""The engine: wire events and commands in, outcomes and transfers out.

Deterministic, and no wall clock: the same sequence of inputs gives the same
outcomes and the same transfers, byte for byte. State is per buyer (clicks,
orders) plus the global share network; every change re-evaluates only the
unsettled orders it can affect and posts the difference as new transfers
(reversal + accrual), never editing what was posted (SPEC §8).

The state lives in the journal's state tables (``ledger.engine.tables``); the
engine holds a bounded cache of it. Its parts: ``dedupe`` (SPEC §8),
``clicks`` (buyers' clicks, parked clicks, cold rows), ``orders`` (orders and
their indexes, parked refunds), the promoter ``network``, ``decision`` (who
wins, pure), ``posting`` (transfers) and ``commands`` (settle, payout, adjust).
"""

from __future__ import annotations

from typing import Mapping, Sequence

from ledger.attribution import ClickRef
from ledger.commission import order_totals
from ledger.config import Rules, rules_from_toml_text
from ledger.engine import commands, spaces
from ledger.engine.clicks import ClickIndex
from ledger.engine.codecs import decoder, encode, id_key
from ledger.engine.decision import decide
from ledger.engine.fulfillment import awaits_receipt, record_fulfillment
from ledger.engine.groups import decide_groups, level1_of, line_shares, merchant_clicks, post_groups
from ledger.engine.dedupe import NEW, SAME, At, Dedupe, FirstRaw
from ledger.engine.holds import ORDER, PROMOTER, Holds
from ledger.engine.network import Network
from ledger.engine.orders import OrderBook
from ledger.engine.posting import post
from ledger.engine.state import (
    ACCEPTED, DEAD_LETTER, DUPLICATE, PARKED, BuyerRow, Decision, OrderState, Outcome, Params, ParkedRefund, ShareRef,
)
from ledger.engine.tables import StateCache
from ledger.invariants import InvariantError, check_order_amounts, require
from ledger.limits import DEFAULT_LIMITS, Limits
from ledger.records import DeadLetter, Source, Transfer
from ledger.statestore import MemoryState
from schemas import reasons
from schemas.decode import Decoded, Rejected, decode_event
from schemas.events import Click, Fulfillment, Order, Refund, Share


class Engine:
    """The ledger state of one journal, as a cache over its state tables."""

    def __init__(self, cache: StateCache, limits: Limits = DEFAULT_LIMITS, first_raw: FirstRaw | None = None) -> None:
        """``first_raw(version, index)``: the raw bytes of the record there (a
        repeated event id's first occurrence); without it the engine keeps the
        raw events it applied in memory (tests, benchmarks, one-off use)."""
        self.cache = cache
        self._applied: list[bytes] = []
        # Where the record of the event applied next will stand (the caller sets it).
        self.at: At = (0, 0)
        self.meta = cache.meta
        self.limits = limits
        self.rules: list[Rules] = [rules_from_toml_text(t) for t in self.meta.rules_toml]  # index = version − 1
        self.params: list[Params] = [Params.of(r) for r in self.rules]  # the same, compiled
        self.dedupe = Dedupe(cache, first_raw or self._applied_raw)
        self.buyers = cache.table(spaces.BUYERS, id_key, encode, decoder(BuyerRow))
        self.orders = OrderBook(cache, self.meta, self.buyers)
        self.network = Network(cache)
        self.clicks = ClickIndex(cache, self.meta, limits, self.params, self.buyers)
        self.holds = Holds(cache, self.orders)
        self._settle_position = 0
        self.batching = False
        self._deferred_start: tuple[int, str] | None = None

    # ------------------------------------------------------------------ rules
    @property
    def rules_version(self) -> int:
        return len(self.rules)

    @property
    def current_rules(self) -> Rules:
        require(bool(self.rules), "no rules adopted yet")
        return self.rules[-1]

    def adopt_rules(self, rules: Rules) -> int | None:
        """Put ``rules`` in force; return the new version, or None if unchanged."""
        if self.rules and self.rules[-1] == rules:
            return None
        self.rules.append(rules)
        self.params.append(Params.of(rules))
        self.meta.rules_toml.append(rules.to_toml())
        return len(self.rules)

    # ------------------------------------------------------------------ input
    def ingest(self, raw: bytes, source: Source) -> Outcome:
        """Apply one wire event, the record of which the engine keeps in memory
        (no journal: tests, benchmarks). Never raises for bad input."""
        self.at = (0, len(self._applied))
        self._applied.append(raw)
        return self.apply_decoded(decode_event(raw), raw, source)

    def _applied_raw(self, version: int, index: int) -> bytes:
        return self._applied[index]

    def apply_decoded(self, decoded: Decoded | Rejected, raw: bytes, source: Source) -> Outcome:
        if isinstance(decoded, Rejected):
            return _dead(decoded.reason, decoded.detail, raw, source, None)
        return self.apply(decoded, raw, source)

    def apply(self, decoded: Decoded, raw: bytes, source: Source) -> Outcome:
        event = decoded.event
        event_id = event.event_id
        seen = self.dedupe.check(event_id, decoded)
        if seen != NEW:
            if seen == SAME:
                return Outcome(DUPLICATE, event_id, [])
            return _dead(reasons.CONFLICTING_DUPLICATE, "event_id already accepted with other content", raw, source, None)
        if isinstance(event, Click):
            self.dedupe.claim(event_id, self.at)
            return self._click(event, decoded.occurred_us)
        if isinstance(event, Order):
            if self.orders.get(event.order_id) is not None:
                return self._dead_keep(reasons.DUPLICATE_BUSINESS_ID, f"order_id {event.order_id!r} already used", raw, source, decoded)
            self.dedupe.claim(event_id, self.at)
            return self._order(event, decoded.occurred_us)
        if isinstance(event, Share):
            if self.network.shares.get(event.share_id) is not None:
                return self._dead_keep(reasons.DUPLICATE_BUSINESS_ID, f"share_id {event.share_id!r} already used", raw, source, decoded)
            self.dedupe.claim(event_id, self.at)
            return self._share(event, decoded.occurred_us)
        if isinstance(event, Fulfillment):
            self.dedupe.claim(event_id, self.at)  # claimed whatever comes of it (SPEC §15)
            return self._fulfillment(event, decoded.occurred_us, raw, source)
        if not isinstance(event, Refund):
            raise InvariantError(f"unknown event type {type(event).__name__}")
        if self.dedupe.refund_claimed(event.refund_id):
            return self._dead_keep(reasons.DUPLICATE_BUSINESS_ID, f"refund_id {event.refund_id!r} already used", raw, source, decoded)
        self.dedupe.claim(event_id, self.at)
        return self._refund(event, raw, source)

    def _dead_keep(self, reason: str, detail: str, raw: bytes, source: Source, decoded: Decoded) -> Outcome:
        """A dead letter that keeps its event_id (SPEC §8)."""
        require(reason in reasons.KEEPS_EVENT_ID, f"{reason} does not keep its event_id")
        event_id = decoded.event.event_id
        self.dedupe.claim(event_id, self.at)
        return _dead(reason, detail, raw, source, event_id)

    # --------------------------------------------------------------- prefetch
    def prefetch(self, batch: Sequence[Decoded | Rejected]) -> None:
        """Load, in a few queries, the state a batch of decoded events will
        touch. Only a cost: anything not loaded here is read when needed."""
        events = [d.event for d in batch if isinstance(d, Decoded)]
        if not events:
            return
        self.dedupe.seen.prefetch(e.event_id for e in events)
        buyers = {e.buyer_id for e in events if isinstance(e, (Click, Order))}
        shares = {e.share_id for e in events if isinstance(e, (Click, Share))}
        shares |= {e.parent_share_id for e in events if isinstance(e, Share) and e.parent_share_id is not None}
        order_ids = {e.order_id for e in events if isinstance(e, (Order, Refund, Fulfillment))}
        self.buyers.prefetch(buyers)
        self.network.shares.prefetch(shares)
        if self.meta.parked_refunds:
            self.orders.parked.prefetch(order_ids)
        else:  # none stored: only what this batch parks can be looked up (in the cache)
            self.orders.none_parked_stored = True
        if any(isinstance(e, Fulfillment) for e in events) or self.meta.parked_fulfillments:
            self.orders.receipts.parked.prefetch(e.order_id for e in events if isinstance(e, Order))
        self.dedupe.refunds.prefetch(e.refund_id for e in events if isinstance(e, Refund))
        self.holds.flags.prefetch(e.order_id for e in events if isinstance(e, Refund))
        if self.meta.parked_clicks:
            self.clicks.parked.prefetch([e.share_id for e in events if isinstance(e, Share)])
        self.network.children.prefetch(shares)
        # Second round: what those rows name. A click re-evaluates only its
        # buyer's unsettled orders dated at or after it (``_affected_by_click``).
        for d in batch:
            if isinstance(d, Decoded) and isinstance(d.event, Click):
                click_us = d.occurred_us
                order_ids.update(ref.order_id for ref in self.orders.unsettled_of_buyer(d.event.buyer_id)
                                 if ref.occurred_us >= click_us)
        self.orders.orders.prefetch(order_ids)
        promoters = {share.promoter_id for share in map(self.network.shares.get, shares) if share is not None}
        promoters |= {e.promoter_id for e in events if isinstance(e, Share)}
        self.network.upline.prefetch(promoters)

    # ----------------------------------------------------------------- clicks
    def _click(self, click: Click, occurred_us: int) -> Outcome:
        share = self.network.shares.get(click.share_id)
        if share is None:
            self.clicks.park(click.share_id, click.buyer_id, ClickRef(occurred_us, click.event_id, click.share_id))
            return Outcome(PARKED, click.event_id, [])
        ref = ClickRef(occurred_us, click.event_id, click.share_id)
        self.clicks.add(click.buyer_id, ref)
        transfers: list[Transfer] = []
        self._reevaluate(self._affected_by_click(click.buyer_id, ref), transfers)
        return Outcome(ACCEPTED, click.event_id, transfers)

    def _affected_by_click(self, buyer_id: str, ref: ClickRef) -> list[OrderState]:
        """The buyer's unsettled orders whose attribution this click can change."""
        affected = []
        click_us = ref.occurred_us
        for order in self.orders.unsettled_of_buyer(buyer_id):
            if order.occurred_us < click_us:
                continue
            params = self.params[order.rules_version - 1]
            if params.model == "customer_lock" or order.occurred_us <= click_us + params.window_us:
                affected.append(self.orders.get(order.order_id))
        return affected  # type: ignore[return-value]

    # ----------------------------------------------------------------- shares
    def _share(self, share: Share, occurred_us: int) -> Outcome:
        ref = ShareRef(occurred_us, share.event_id, share.share_id, share.promoter_id, share.parent_share_id,
                       share.merchant_id, share.product_id)
        start = self.network.add(ref, self._deferred_start)
        affected: dict[str, OrderState] = {}
        if start is not None:
            if self.batching and (self._deferred_start is not None
                                  or self.network.walk_exceeds(start, self.limits.immediate_walk_max)):
                self._deferred_start = start  # one long walk at the end of the batch
            else:
                affected = self.orders.won_by(self.network.recompute_from(start))
        for buyer_id, click in self.clicks.unpark(share.share_id):
            self.clicks.add(buyer_id, click)
            for state in self._affected_by_click(buyer_id, click):
                affected[state.order_id] = state
        transfers: list[Transfer] = []
        self._reevaluate(list(affected.values()), transfers)
        return Outcome(ACCEPTED, share.event_id, transfers)

    # ---------------------------------------------------------------- batches
    def begin_batch(self) -> None:
        """Within a batch, a late share that changes the network marks where
        the walk must restart instead of walking at once: one walk per batch,
        not one per out-of-order share (which is quadratic on a backfill)."""
        require(not self.batching, "batch already open")
        self.batching = True

    def end_batch(self) -> tuple[bool, list[Transfer]]:
        """Walk the network once if a share asked for it and re-evaluate the
        orders whose upline changed. Returns (walked, transfers)."""
        require(self.batching, "no batch open")
        self.batching = False
        self.orders.none_parked_stored = False
        start, self._deferred_start = self._deferred_start, None
        transfers: list[Transfer] = []
        if start is not None:
            self._reevaluate(list(self.orders.won_by(self.network.recompute_from(start)).values()), transfers)
        return start is not None, transfers

    # ----------------------------------------------------------------- orders
    def _order(self, order: Order, occurred_us: int) -> Outcome:
        params = self.params[-1]
        totals = order_totals(order.lines, params.rates_bp, params.order_cap_bp, params.order_cap_minor)
        state = OrderState.new(order, occurred_us, self.rules_version, totals)
        if params.scope == "product":
            state.lines = line_shares(order.lines, params.rates_bp)
        state.receipt_clock = params.receipt_clock
        self.clicks.observe(occurred_us)
        self.orders.add(state)
        if params.receipt_clock:
            self.orders.receipts.add(state, params)
        transfers: list[Transfer] = []
        self._reevaluate([state], transfers)
        released: list[DeadLetter] = []
        for parked in self.orders.unpark_refunds(order.order_id):
            decoded = decode_event(parked.raw)
            require(isinstance(decoded, Decoded) and isinstance(decoded.event, Refund), "a parked refund no longer decodes")
            letter = self._apply_refund(state, decoded.event, parked.raw, parked.source, transfers)  # type: ignore[union-attr,arg-type]
            if letter is not None:
                released.append(letter)
        for parked in self.orders.receipts.unpark(order.order_id) if self.meta.parked_fulfillments else ():
            decoded = decode_event(parked.raw)
            require(isinstance(decoded, Decoded) and isinstance(decoded.event, Fulfillment), "a parked fulfillment no longer decodes")
            letter = self._apply_fulfillment(state, decoded.event, decoded.occurred_us, parked.raw, parked.source)  # type: ignore[union-attr,arg-type]
            if letter is not None:
                released.append(letter)
        return Outcome(ACCEPTED, order.event_id, transfers, None, released)

    # ----------------------------------------------------------- fulfillment
    def _fulfillment(self, event: Fulfillment, occurred_us: int, raw: bytes, source: Source) -> Outcome:
        """SPEC §15: parked until its order is known; a wrong buyer is a dead
        letter (its event_id stays claimed); after settlement it is recorded
        and changes nothing. Touches its order only."""
        state = self.orders.get(event.order_id)
        if state is None:
            self.orders.receipts.park(event.order_id, ParkedRefund(raw, source))
            return Outcome(PARKED, event.event_id, [])
        letter = self._apply_fulfillment(state, event, occurred_us, raw, source)
        if letter is not None:
            return Outcome(DEAD_LETTER, event.event_id, [], letter)
        return Outcome(ACCEPTED, event.event_id, [])

    def _apply_fulfillment(self, state: OrderState, event: Fulfillment, occurred_us: int, raw: bytes,
                           source: Source) -> DeadLetter | None:
        if event.buyer_id != state.buyer_id:
            return DeadLetter(reasons.FULFILLMENT_BUYER_MISMATCH, f"order {state.order_id!r} belongs to another buyer",
                              source, raw, event.event_id, state.order_id)
        if state.settled:
            return None  # recorded, changes nothing
        was_awaiting = awaits_receipt(state)
        if record_fulfillment(state, event.stage, occurred_us):
            if state.receipt_clock:
                self.orders.receipts.reindex(state, self.params[state.rules_version - 1], was_awaiting)
            self.orders.save(state)
        return None

    # ---------------------------------------------------------------- refunds
    def _refund(self, refund: Refund, raw: bytes, source: Source) -> Outcome:
        state = self.orders.get(refund.order_id)
        self.dedupe.claim_refund(refund.refund_id)
        if state is None:
            self.orders.park_refund(refund.order_id, ParkedRefund(raw, source))
            return Outcome(PARKED, refund.event_id, [])
        transfers: list[Transfer] = []
        letter = self._apply_refund(state, refund, raw, source, transfers)
        if letter is not None:
            return Outcome(DEAD_LETTER, refund.event_id, [], letter)
        return Outcome(ACCEPTED, refund.event_id, transfers)

    def _apply_refund(self, state: OrderState, refund: Refund, raw: bytes, source: Source,
                      transfers: list[Transfer]) -> DeadLetter | None:
        """Apply or reject a refund of a known order; a rejection releases its refund_id."""
        if refund.buyer_id != state.buyer_id:
            self.dedupe.release_refund(refund.refund_id)
            return DeadLetter(reasons.REFUND_BUYER_MISMATCH, f"order {state.order_id!r} belongs to another buyer", source, raw,
                              refund.event_id, state.order_id)
        if state.refunded_minor + refund.amount > state.commissionable_minor:
            self.dedupe.release_refund(refund.refund_id)
            detail = f"refunds would total {state.refunded_minor + refund.amount} > commissionable {state.commissionable_minor}"
            return DeadLetter(reasons.REFUND_EXCEEDS_ORDER, detail, source, raw, refund.event_id, state.order_id)
        was_awaiting = awaits_receipt(state)
        state.refunded_minor += refund.amount
        state.refunds += ((refund.refund_id, refund.amount),)
        if self.holds.is_rejected(state.order_id):
            pass  # a rejected order's refund counts toward R and reverses nothing (SPEC §16)
        elif state.groups or state.posted:
            post_groups(state, transfers)
        else:
            post(state, state.decision, transfers)
        if state.receipt_clock and not state.settled:
            self.orders.receipts.reindex(state, self.params[state.rules_version - 1], was_awaiting)
        self.orders.save(state)
        return None

    # ------------------------------------------------------------- evaluation
    def decide(self, state: OrderState) -> Decision:
        """Who wins ``state``'s order now, and the amounts before refunds."""
        params = self.params[state.rules_version - 1]
        clicks = self.clicks.for_order(state.buyer_id, state.occurred_us, params)
        if params.scope == "merchant" and clicks:
            clicks = merchant_clicks(state, params, clicks, self.network)
        return decide(state, params, clicks, self.network)

    def _reevaluate(self, states: list[OrderState], transfers: list[Transfer]) -> None:
        if len(states) > 1:
            states = sorted(states, key=lambda s: (s.occurred_us, s.event_id))
        for state in states:
            require(not state.settled, f"order {state.order_id!r} re-evaluated after settlement")
            params = self.params[state.rules_version - 1]
            if params.scope == "product":
                groups = decide_groups(state, params, self.clicks.for_order(state.buyer_id, state.occurred_us, params),
                                       self.network)
                self.orders.set_level1_all(state, level1_of(state.groups), level1_of(groups))
                state.groups = groups
                post_groups(state, transfers)
                self.orders.save(state)
                continue
            new = self.decide(state)
            old1 = state.decision.level1
            self.orders.set_level1(state, old1.promoter_id if old1 is not None else None,
                                   new.level1.promoter_id if new.level1 is not None else None)
            state.decision = new
            post(state, new, transfers)
            self.orders.save(state)
            check_order_amounts(*new.capped_minor, state.order_cap_minor, state.refunded_minor, state.commissionable_minor)

    # --------------------------------------------------------------- commands
    def settle(self, as_of_us: int, limit: int = 0) -> tuple[list[str], list[Transfer]]:
        """Settle every known order with occurred + lock_period ≤ as_of (SPEC §7);
        the first ``limit`` of them when ``limit`` > 0. Due orders meeting a
        review condition are held instead (SPEC §16): ``holds.reviewed`` after."""
        self.holds.reviewed = []
        self._settle_position = self.position()
        return commands.settle(self.orders, as_of_us, self.current_rules.settlement_lock_us, limit, self._review)

    def _review(self, state: OrderState) -> bool:
        return self.holds.review_at_settle(state, self.params[state.rules_version - 1], self._settle_position)

    def held_waiting(self, as_of_us: int) -> list[str]:
        """Due orders (as of ``as_of_us``) left waiting on a hold, after a settle."""
        return self.holds.waiting(self.orders.due_bound(as_of_us, self.current_rules.settlement_lock_us), as_of_us)

    def position(self) -> int:
        """The journal position of the record being applied (``at`` set by the caller)."""
        return self.meta.position + self.at[1] + 1

    # ------------------------------------------------------ holds (SPEC §16)
    def hold(self, target: str, target_id: str, actor: str, reason: str) -> None:
        if target == ORDER:
            self.holds.hold_order(target_id, actor, reason, self.position())
        else:
            require(target == PROMOTER, f"hold of a {target!r}")
            self.holds.hold_promoter(target_id, actor, reason, self.position())

    def release(self, target: str, target_id: str, actor: str, reason: str) -> None:
        if target == ORDER:
            self.holds.release_order(target_id, actor, reason, self.position())
        else:
            require(target == PROMOTER, f"release of a {target!r}")
            self.holds.release_promoter(target_id, actor, reason, self.position())

    def reject(self, order_id: str, actor: str, reason: str) -> list[Transfer]:
        transfers: list[Transfer] = []
        self.holds.reject_order(order_id, actor, reason, self.position(), transfers)
        return transfers

    def has_due(self, as_of_us: int) -> bool:
        """Whether ``settle(as_of_us)`` would settle any order."""
        return self.orders.any_due(as_of_us, self.current_rules.settlement_lock_us)

    def payout(self, payables: Mapping[tuple[str, str], int], skipped: list[tuple[str, str, int]] | None = None) -> list[Transfer]:
        """SPEC §7's payout; the lines of promoters held here (the treasury) are
        skipped and appended to ``skipped`` (SPEC §16)."""
        return commands.payout(payables, self.current_rules.min_payout_minor, self.rules_version,
                               self.holds.held_promoters(), skipped)

    def book_payout(self, transfers: list[Transfer], skipped: list[tuple[str, str, int]] | None = None) -> None:
        """Replay a recorded payout (its amounts are booked, not recomputed):
        it paid no promoter held then, and skipped only held ones."""
        commands.check_recorded_payout(transfers)
        held = self.holds.held_promoters()
        for t in transfers:
            require(t.promoter_id not in held, f"a payout paid held promoter {t.promoter_id!r}")
        for promoter_id, _, _ in skipped or ():
            require(promoter_id in held, f"a payout skipped promoter {promoter_id!r}, who was not held")

    def adjust(self, promoter_id: str, currency: str, amount_minor: int) -> list[Transfer]:
        return commands.adjust(promoter_id, currency, amount_minor, self.rules_version)

    # ----------------------------------------------------------------- views
    def parked_counts(self) -> tuple[int, int]:
        """(parked clicks, parked refunds) right now."""
        return self.clicks.parked_count(), self.orders.parked_refund_count()

    def parked_fulfillments(self) -> int:
        return self.meta.parked_fulfillments

    def awaiting_receipt(self) -> int:
        """Receipt-clock orders unsettled, not received, not fully refunded (SPEC §15's metric)."""
        return self.meta.awaiting_receipt


def memory_engine(limits: Limits = DEFAULT_LIMITS) -> Engine:
    """An engine whose state lives in a private in-memory store (benchmarks,
    tests, one-off computations); nothing is written unless its cache is flushed."""
    return Engine(StateCache(MemoryState(), 1, limits.cache_bytes), limits)


def _dead(reason: str, detail: str, raw: bytes, source: Source, event_id: str | None) -> Outcome:
    return Outcome(DEAD_LETTER, event_id, [], DeadLetter(reason, detail, source, raw, event_id))
