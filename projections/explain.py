"""Why an order went to whom, and how each amount was computed.

Renders the engine's recorded ``Decision`` for the order (the same value the
engine posted: nothing here re-decides), the evidence it was decided on (the
buyer's clicks, the share network, the rules version) and the journal's
transfers for the order (accruals, reversals, settlement, clawbacks).
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

from ledger import attribution
from ledger.books import TREASURY, Books
from ledger.commission import after_refunds, order_amounts
from ledger.engine import Engine, OrderState
from ledger.engine.tables import StateCache
from ledger.limits import DEFAULT_LIMITS, Limits
from ledger.invariants import InvariantError
from ledger.records import (
    DeadLetter, Ingested, Record, cause_of, dead_letters_of, record_transfers,
)
from ledger.store import JournalStore, Store
from projections.holds import hold_view
from projections.explain_scope import receipt_view, scope_view
from projections.readmodels import order_history
from schemas import reasons
from schemas.decode import Decoded, decode_event
from schemas.events import Order
from schemas.timestamps import format_timestamp_us


def _click_view(engine: Engine, click: attribution.ClickRef) -> dict[str, Any]:
    share = engine.network.shares.get(click.share_id)
    return {
        "event_id": click.event_id,
        "occurred_at": format_timestamp_us(click.occurred_us),
        "share_id": click.share_id,
        "promoter_id": share.promoter_id if share else None,
    }


def _attribution_view(engine: Engine, state: OrderState) -> dict[str, Any]:
    """The evidence: the clicks the rules looked at for this order."""
    rules = engine.rules[state.rules_version - 1]
    clicks = engine.clicks.all_of(state.buyer_id)
    order_us = state.occurred_us
    view: dict[str, Any] = {"model": rules.model}
    if rules.model == "customer_lock":
        view["lock_period"] = rules.attribution_lock_period
        considered = [c for c in clicks if c.occurred_us <= order_us]
        view["clicks_considered"] = [_click_view(engine, c) for c in considered]
        view["rule"] = "the binding active at the order's time; a click inside an active binding neither starts, extends nor renews one"
        win = state.decision.click
        if win is not None:
            view["binding"] = {
                "from": format_timestamp_us(win.occurred_us),
                "until_excl": format_timestamp_us(win.occurred_us + rules.attribution_lock_us),
            }
    else:
        view["window"] = rules.window
        view["window_from"] = format_timestamp_us(order_us - rules.window_us)
        view["window_to"] = format_timestamp_us(order_us)
        view["candidates"] = [_click_view(engine, c) for c in attribution.window_candidates(clicks, order_us, rules.window_us)]
        view["rule"] = (
            "greatest (occurred_at, event_id) among candidates" if rules.model == "last_click"
            else "smallest (occurred_at, event_id) among candidates"
        )
    view["parked_clicks_unknown_share"] = [
        {"event_id": ref.event_id, "occurred_at": format_timestamp_us(ref.occurred_us), "share_id": share_id}
        for share_id, ref in engine.clicks.parked_of(state.buyer_id)
    ]
    return view


def _journal_facts(records: Iterable[tuple[int, Record]], state: OrderState) -> tuple[bytes | None, list, list]:
    """The order's raw event, its transfers' history and its rejected refunds."""
    raw = None
    history: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for position, record in records:
        if isinstance(record, Ingested) and record.event_id == state.event_id and record.outcome != "duplicate":
            raw = record.raw
        for t in record_transfers(record):
            if t.order_id == state.order_id:
                history.append({
                    "position": position, "kind": t.kind, "level": t.level,
                    "promoter_id": t.promoter_id, "amount_minor": t.amount_minor,
                    "debit": t.debit, "credit": t.credit, "rules_version": t.rules_version,
                    "cause": cause_of(record),
                })
        for letter, order_id in _rejected_refunds(record):
            if order_id == state.order_id:
                rejected.append({"position": position, "reason": letter.reason, "detail": letter.detail, "event_id": letter.event_id})
    return raw, history, rejected


def _rejected_refunds(record: Record) -> Iterator[tuple[DeadLetter, str]]:
    """The refunds a record rejected (buyer mismatch, exceeds order), with their order_id."""
    for letter in dead_letters_of(record):
        if letter.order_id is not None:
            yield letter, letter.order_id


def explain(engine: Engine, records: Iterable[tuple[int, Record]], order_id: str) -> dict[str, Any] | None:
    """The explanation of ``order_id`` citing ``records`` (a journal read
    through), or None when the order is not known."""
    state = engine.orders.get(order_id)
    if state is None:
        return None
    return explain_with(engine, state, _journal_facts(records, state))


def explain_with(engine: Engine, state: OrderState, facts: tuple[bytes | None, list, list]) -> dict[str, Any]:
    """The explanation of ``state``'s order, citing ``facts``: the order's raw
    event, the transfers that touched it, its rejected refunds."""
    order_id = state.order_id
    raw, history, rejected = facts
    decoded = decode_event(raw) if raw is not None else None
    if not (isinstance(decoded, Decoded) and isinstance(decoded.event, Order)):
        raise InvariantError(f"order {order_id!r}: its order event is missing from the journal")
    order = decoded.event
    rules = engine.rules[state.rules_version - 1]
    params = engine.params[state.rules_version - 1]
    amounts = order_amounts(order.lines, params.rates_bp, params.order_cap_bp, params.order_cap_minor)
    decision = state.decision
    view: dict[str, Any] = {
        "order_id": order_id,
        "event_id": order.event_id,
        "buyer_id": order.buyer_id,
        "merchant_id": order.merchant_id,
        "currency": state.currency,
        "occurred_at": order.occurred_at,
        "occurred_at_utc": format_timestamp_us(state.occurred_us),
        "rules_version": state.rules_version,
        "status": "settled" if state.settled else "pending",
        "lines": [
            {
                "sku": x.sku,
                "commissionable": x.commissionable_minor,
                "level1_rate_bp": x.rate1_bp,
                "level1_rate_bp_after_cap": x.r1_bp,
                "level1": x.level1_minor,
                "level2_rate_bp": x.rate2_bp,
                "level2_rate_bp_after_cap": x.r2_bp,
                "level2": x.level2_minor,
            }
            for x in amounts.lines
        ],
        "commissionable": amounts.commissionable_minor,
        "shipping_not_commissionable": order.shipping or 0,
        "level1_before_order_cap": amounts.level1_minor,
        "level2_before_order_cap": amounts.level2_minor,
        "order_cap": {
            "order_cap_bp": rules.order_cap_bp,
            "order_cap_amount": rules.order_cap_amount_minor,
            "K": amounts.order_cap_minor,
        },
        "self_referral": rules.self_referral,
        "attribution": _attribution_view(engine, state),
    }
    if state.settled:
        view["attribution"]["frozen_at_settlement"] = True
    if decision.click is None or decision.level1 is None:
        view["winner"] = None
        view["outcome"] = "unattributed: no candidate click / no binding; the order earns nothing"
    else:
        view["winner"] = _click_view(engine, decision.click)
        view["level1"] = {
            "promoter_id": decision.level1.promoter_id,
            "before_cap": amounts.level1_minor,
            "after_order_cap": decision.capped_minor[0],
            "before_refunds": decision.level1.amount_minor,
        }
        upline = decision.upline
        level2: dict[str, Any] = {}
        if decision.level2 is not None and upline is not None:
            level2 = {
                "promoter_id": decision.level2.promoter_id,
                "bound_by_share": upline.share_id,
                "bound_since": format_timestamp_us(upline.since_us),
                "before_cap": amounts.level2_minor,
                "after_order_cap": decision.capped_minor[1],
                "before_refunds": decision.level2.amount_minor,
            }
        elif upline is None:
            level2["none_because"] = "level-1 promoter has no upline"
        else:
            level2["none_because"] = f"upline {upline.promoter_id} bound only from {format_timestamp_us(upline.since_us)}, after the order"
        view["level2"] = level2
        if decision.self_referral == "level1":
            view["self_referral_effect"] = "buyer is the level-1 promoter: nothing paid at either level"
        elif decision.self_referral == "level2":
            view["self_referral_effect"] = "buyer is the level-2 beneficiary: level 2 pays nothing"
    view["refunds"] = [{"refund_id": rid, "amount": amt} for rid, amt in state.refunds]
    view["refunded_total"] = state.refunded_minor
    view["after_refunds"] = {
        "level1": after_refunds(decision.level1.amount_minor, state.commissionable_minor, state.refunded_minor) if decision.level1 else 0,
        "level2": after_refunds(decision.level2.amount_minor, state.commissionable_minor, state.refunded_minor) if decision.level2 else 0,
        "formula": "floor(L × (C − R) / C)",
    }
    if state.groups or state.posted:  # scope = "product": the groups pay (SPEC §14)
        view["outcome"] = "scope = product: each line has its own winner; each group (coverage.groups) pays on its own"
        view["after_refunds"] = {"formula": "per group and level: floor(L × (C − R) / C)"}
    view["rejected_refunds"] = [r for r in rejected if r["reason"] != reasons.FULFILLMENT_BUYER_MISMATCH]
    if len(view["rejected_refunds"]) != len(rejected):  # SPEC §15: fulfillments naming another buyer
        view["rejected_fulfillments"] = [r for r in rejected if r["reason"] == reasons.FULFILLMENT_BUYER_MISMATCH]
    view.update(hold_view(engine, state))  # SPEC §16 (a rejection's 0 after refunds overrides)
    view["transfers"] = history
    if rules.scope != "any":
        view["coverage"] = scope_view(engine, state, order)
    if rules.clock != "order" or state.shipped_us is not None or state.received_us is not None:
        view["fulfillment"] = receipt_view(engine, state)
    return view


class Explainer:
    """Explanations over every journal of a store, read from each journal's
    state tables as they stand (no replay: the engine opens in O(1) and reads
    the order, the buyer's clicks and the network it needs). Safe to share
    between threads: each explanation opens its own read-only view."""

    def __init__(self, store: Store, limits: Limits = DEFAULT_LIMITS) -> None:
        self.store = store
        self.limits = limits

    def explain(self, order_id: str) -> dict[str, Any] | None:
        """``{"journal": name, **explain(…)}``, or None when no journal knows the order."""
        for name in Books(self.store).journals():
            if name == TREASURY:
                continue
            journal = JournalStore(self.store, name)
            engine = Engine(StateCache(journal.state, journal.number, self.limits.cache_bytes), self.limits)
            state = engine.orders.get(order_id)
            if state is not None:
                return {"journal": name, **explain_with(engine, state, order_history(self.store, name, order_id))}
        return None
