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
