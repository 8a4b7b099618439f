"""Who an order pays, and how much before refunds (SPEC §3–§5): one pure
function of the order, its rules, the buyer's clicks and the network. The
engine posts its result; ``explain`` renders the same result, never re-deriving it."""

from __future__ import annotations

from typing import Sequence

from ledger.attribution import ClickRef, winning_click
from ledger.commission import capped_levels
from ledger.engine.state import NO_DECISION, Beneficiary, Decision, OrderState, Params
from ledger.engine.network import Network
from ledger.invariants import require


def decide(state: OrderState, params: Params, clicks: Sequence[ClickRef], network: Network) -> Decision:
    if not clicks:
        return NO_DECISION
    click = winning_click(params.model, clicks, state.occurred_us, params.window_us, params.lock_us)
    if click is None:
        return NO_DECISION
    share = network.shares.get(click.share_id)
    require(share is not None, f"click {click.event_id!r} names an unknown share")
    p1 = share.promoter_id  # type: ignore[union-attr]
    binding = network.upline.get(p1)
    upline = binding if binding is not None and binding.since_us <= state.occurred_us else None
    l1, l2 = capped = capped_levels(state.level1_minor, state.level2_minor if upline else 0, state.order_cap_minor)
    effect = None
    if params.deny_self_referral:
        if state.buyer_id == p1:
            l1 = l2 = 0
            effect = "level1"
        elif upline is not None and state.buyer_id == upline.promoter_id:
            l2 = 0
            effect = "level2"
    level2 = Beneficiary(upline.promoter_id, l2) if upline is not None else None
    return Decision(click, Beneficiary(p1, l1), level2, binding, capped, effect)
