"""``explain``'s parts for SPEC §14 and §15 (issue 20): per line, its
candidates and whether each one's share covers it, its winner and its group;
the commission groups; under the receipt clock, the receipt instant and when
the order is due, or that it awaits shipment or receipt. Renders the engine's
recorded decision (``OrderState.groups`` / ``decision``), never re-deciding
who won; coverage is recomputed from the shares (a pure function)."""

from __future__ import annotations

from typing import Any

from ledger import attribution
from ledger.commission import after_refunds
from ledger.engine import Engine, OrderState
from ledger.engine.fulfillment import receipt_instant_us
from ledger.scope import covers, coverage_text
from schemas.events import Order, line_product
from schemas.timestamps import format_timestamp_us


def _considered(engine: Engine, state: OrderState) -> list[attribution.ClickRef]:
    rules = engine.rules[state.rules_version - 1]
    clicks = engine.clicks.all_of(state.buyer_id)
    if rules.model == "customer_lock":
        return [c for c in clicks if c.occurred_us <= state.occurred_us]
    return list(attribution.window_candidates(clicks, state.occurred_us, rules.window_us))


def _line_winners(state: OrderState) -> dict[int, tuple[attribution.ClickRef, str]]:
    """line index → (winning click, group promoter) as the engine decided it."""
    won: dict[int, tuple[attribution.ClickRef, str]] = {}
    for group in state.groups:
        for index, click in zip(group.lines, group.clicks):
            won[index] = (click, group.level1.promoter_id)
    return won


def scope_view(engine: Engine, state: OrderState, order: Order) -> dict[str, Any]:
    """Per line: candidates with coverage, winner, group; and the groups."""
    rules = engine.rules[state.rules_version - 1]
    scope = rules.scope
    considered = _considered(engine, state)
    shares = {c.share_id: engine.network.shares.get(c.share_id) for c in considered}
    if scope == "product":
        won = _line_winners(state)
    else:
        decided = state.decision
        whole = (decided.click, decided.level1.promoter_id) if decided.click is not None and decided.level1 else None
        won = {i: whole for i in range(len(order.lines))} if whole is not None else {}
    lines = []
    for i, line in enumerate(order.lines):
        product = line_product(line)
        candidates = []
        for click in considered:
            share = shares[click.share_id]
            if share is None:
                continue
            candidates.append({
                "event_id": click.event_id, "occurred_at": format_timestamp_us(click.occurred_us),
                "share_id": click.share_id, "promoter_id": share.promoter_id,
                "covers": covers(scope, share.merchant_id, share.product_id, state.merchant_id, product),
                "coverage": coverage_text(scope, share.share_id, share.merchant_id, share.product_id,
                                          state.merchant_id, product, line.sku),
            })
        winner = won.get(i)
        lines.append({
            "sku": line.sku, "product_id": product, "candidates": candidates,
            "winner": winner[0].event_id if winner else None,
            "group": winner[1] if winner else None,
        })
    view: dict[str, Any] = {"scope": scope, "lines": lines}
    if scope == "product":
        c, r = state.commissionable_minor, state.refunded_minor
        view["groups"] = [{
            "promoter_id": g.level1.promoter_id,
            "lines": [order.lines[i].sku for i in g.lines],
            "commissionable": g.commissionable_minor,
            "K": g.order_cap_minor,
            "level1": {"promoter_id": g.level1.promoter_id, "after_group_cap": g.capped_minor[0],
                       "before_refunds": g.level1.amount_minor,
                       "after_refunds": after_refunds(g.level1.amount_minor, c, r)},
            "level2": ({"promoter_id": g.level2.promoter_id, "after_group_cap": g.capped_minor[1],
                        "before_refunds": g.level2.amount_minor,
                        "after_refunds": after_refunds(g.level2.amount_minor, c, r)} if g.level2 is not None else None),
            "self_referral_effect": g.self_referral,
        } for g in state.groups]
        view["refund_formula"] = "per group and level: floor(L × (C − R) / C) with the order's C and R"
    return view


def receipt_view(engine: Engine, state: OrderState) -> dict[str, Any]:
    """The fulfillments seen and, under the receipt clock, when the order is due."""
    rules = engine.rules[state.rules_version - 1]
    fmt = lambda us: format_timestamp_us(us) if us is not None else None  # noqa: E731
    view: dict[str, Any] = {"clock": rules.clock, "shipped_at": fmt(state.shipped_us), "received_at": fmt(state.received_us)}
    if rules.clock != "receipt":
        view["note"] = "clock = order: fulfillments are recorded and change nothing"
        return view
    instant = receipt_instant_us(state, rules.auto_receive_after_us)
    view["return_window"] = rules.return_window
    view["auto_receive_after"] = rules.auto_receive_after
    view["receipt_instant"] = fmt(instant)
    view["due_at"] = fmt(state.due_us)  # the lock end: settle --as-of ≥ this settles it
    if state.settled:
        view["status"] = "settled"
    elif state.refunded_minor == state.commissionable_minor:
        view["status"] = "fully refunded: due at the order's time + return_window, shipped or not"
    elif state.received_us is None and state.shipped_us is None:
        view["status"] = "awaiting shipment"
    elif state.received_us is None:
        view["status"] = "awaiting receipt"
    else:
        view["status"] = "received"
    return view
