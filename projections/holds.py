"""SPEC §16 in the read side: an order's hold state as ``explain`` and the
order page show it, and the holds in force as ``holds`` and ``GET /v1/holds``
list them."""

from __future__ import annotations

from typing import Any

from ledger.engine import Engine, OrderState

HOLD_COLUMNS = ("kind", "id", "reasons", "actor", "journal", "position")


def hold_state(engine: Engine, state: OrderState) -> str:
    """rejected | held | held_for_review | approved | none."""
    flags = engine.holds.flags.get(state.order_id)
    if flags is None:
        return "none"
    if flags.rejected:
        return "rejected"
    if flags.holds:
        return "held"
    if flags.review:
        return "held_for_review"
    return "approved" if flags.approved else "none"


def hold_view(engine: Engine, state: OrderState) -> dict[str, Any]:
    """What explain adds: the hold state, the review reasons in force, and
    every hold, review, release (approval) and rejection with actor, reason
    and journal position. A rejected order pays 0 after refunds, for good."""
    flags = engine.holds.flags.get(state.order_id)
    view: dict[str, Any] = {
        "hold_state": hold_state(engine, state),
        "review_reasons": list(flags.review) if flags is not None else [],
        "holds": [{"action": "approve" if n.action == "release" else n.action, "actor": n.actor,
                   "reason": n.reason, "position": n.position} for n in (flags.notes if flags is not None else [])],
    }
    if flags is not None and flags.rejected:
        view["after_refunds"] = {"level1": 0, "level2": 0, "formula": "rejected: 0 at both levels for good (SPEC §16)"}
    return view


def hold_figures(books: Any) -> dict[str, Any]:
    """What ``/metrics`` shows of SPEC §16, from each journal's state (holds
    in force only: cost follows the holds, not the history):
    ``orders[reason]`` held orders by reason (``hold``, ``self_referral``,
    ``amount_over``), ``amounts[(reason, currency)]`` the pending minor units
    they hold back, ``promoters`` held promoters, ``oldest_records`` records
    written to the journal since its oldest hold in force (age in journal
    position terms), ``oldest_order_us`` the instant of the oldest held order."""
    from ledger.app import Ledger
    from ledger.store import TREASURY, JournalStore

    orders: dict[str, int] = {}
    amounts: dict[tuple[str, str], int] = {}
    promoters = 0
    oldest_records = 0
    oldest_order_us: int | None = None
    for name in books.journals():
        ledger = Ledger(JournalStore(books.store, name), limits=books.limits)
        holds = ledger.engine.holds
        if name == TREASURY:
            held = holds.held_promoters()
            promoters = len(held)
            for notes in held.values():
                oldest_records = max(oldest_records, ledger.position - min(n.position for n in notes))
            continue
        for order_id in holds.held_order_ids():
            flags, state = holds.flags.get(order_id), ledger.engine.orders.get(order_id)
            if flags is None or state is None:
                continue
            reasons = (["hold"] if flags.holds else []) + list(flags.review)
            held_minor = sum(p[1] for p in (state.posted1, state.posted2) if p is not None)
            held_minor += sum(amount for _, _, amount in state.posted)  # commission groups (SPEC §14)
            for reason in reasons:
                orders[reason] = orders.get(reason, 0) + 1
                amounts[(reason, state.currency)] = amounts.get((reason, state.currency), 0) + held_minor
            notes = flags.notes_in_force()
            if notes:
                oldest_records = max(oldest_records, ledger.position - min(n.position for n in notes))
            if oldest_order_us is None or state.occurred_us < oldest_order_us:
                oldest_order_us = state.occurred_us
    return {"orders": orders, "amounts": amounts, "promoters": promoters, "oldest_records": oldest_records,
            "oldest_order_us": oldest_order_us}
