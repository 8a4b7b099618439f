"""Who an order pays, and how much before refunds (SPEC §3–§5): one pure
function of the order, its rules, the buyer's clicks and the network. The
engine posts its result; ``explain`` renders the same result, never re-deriving it."""

from __future__ import annotations

from typing import Optional, Sequence

from ledger.attribution import ClickRef, winning_click
from ledger.commission import capped_levels
from ledger.engine.state import NO_DECISION, Beneficiary, Decision, OrderState, Params, Upline
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
    binding, capped, level1, level2, effect = pays(p1, state.level1_minor, state.level2_minor, state.order_cap_minor,
                                                   state, params, network)
    return Decision(click, level1, level2, binding, capped, effect)


def pays(p1: str, level1_minor: int, level2_minor: int, cap_minor: int, state: OrderState, params: Params,
         network: Network) -> tuple[Optional[Upline], tuple[int, int], Beneficiary, Optional[Beneficiary], Optional[str]]:
    """What level-1 promoter ``p1`` and its upline earn on amounts before the
    cap (the order's, or one commission group's: SPEC §5, §14): P's upline
    binding (even one dated after the order), (L1, L2) after the cap, the two
    beneficiaries after ``self_referral = "deny"``, and what deny zeroed."""
    binding = network.upline.get(p1)
    upline = binding if binding is not None and binding.since_us <= state.occurred_us else None
    l1, l2 = capped = capped_levels(level1_minor, level2_minor if upline else 0, cap_minor)
    effect = None
    if params.deny_self_referral:
        if state.buyer_id == p1:
            l1 = l2 = 0
            effect = "level1"
        elif upline is not None and state.buyer_id == upline.promoter_id:
            l2 = 0
            effect = "level2"
    level2 = Beneficiary(upline.promoter_id, l2) if upline is not None else None
    return binding, capped, Beneficiary(p1, l1), level2, effect
