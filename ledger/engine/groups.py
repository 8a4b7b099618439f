"""Coverage in decisions (SPEC §14): the merchant filter of ``scope =
"merchant"``, and under ``scope = "product"`` a winner per line and the
commission groups, each with §5 on its own, posted per (level, promoter).

``scope = "any"`` never comes here: its decisions and postings are the ones
of ``ledger.engine.decision`` and ``ledger.engine.posting``, unchanged.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Sequence

from ledger.attribution import ClickRef, window_candidates
from ledger.commission import after_refunds, order_cap
from ledger.engine.decision import pays
from ledger.engine.network import Network
from ledger.engine.posting import move
from ledger.engine.state import Group, LineShare, OrderState, Params, ShareRef
from ledger.invariants import check_order_amounts, require
from ledger.records import EXPENSE, PAYABLE, PENDING, GroupedTransfer, Transfer
from ledger.scope import covers, covers_merchant
from schemas.events import Line, line_product


def _occurred(click: ClickRef) -> int:
    return click.occurred_us


def merchant_clicks(state: OrderState, params: Params, clicks: Sequence[ClickRef], network: Network) -> list[ClickRef]:
    """The clicks (complete for the order, sorted) whose shares cover the
    order's merchant, among those that can matter: under customer_lock every
    click up to the order (one binding history per buyer and merchant), else
    the window's candidates (coverage filters before the model)."""
    if params.model == "customer_lock":
        upto: Sequence[ClickRef] = clicks[:bisect_right(clicks, state.occurred_us, key=_occurred)]
    else:
        upto = window_candidates(clicks, state.occurred_us, params.window_us)
    merchant_id = state.merchant_id
    kept = []
    for click in upto:
        share = network.shares.get(click.share_id)
        require(share is not None, f"click {click.event_id!r} names an unknown share")
        if covers_merchant(share.merchant_id, merchant_id):  # type: ignore[union-attr]
            kept.append(click)
    return kept


def line_shares(lines: Sequence[Line], rates_bp: tuple[int, int, int, int]) -> tuple[LineShare, ...]:
    """Per line: its product id, a, floor(a × r1 / 10000), floor(a × r2 / 10000) (SPEC §5)."""
    default1, default2, cap1, cap2 = rates_bp
    out = []
    for line in lines:
        a = line.quantity * line.unit_price - (line.discount or 0)
        r1 = line.level1_rate_bp if line.level1_rate_bp is not None else default1
        r2 = line.level2_rate_bp if line.level2_rate_bp is not None else default2
        out.append(LineShare(line_product(line), a, a * min(r1, cap1) // 10_000, a * min(r2, cap2) // 10_000))
    return tuple(out)


def line_winners(state: OrderState, params: Params, clicks: Sequence[ClickRef],
                 network: Network) -> list[tuple[ClickRef, ShareRef] | None]:
    """Each line's winning click and its share, or None (``scope = "product"``,
    a windowed model: customer_lock with product is a configuration error)."""
    candidates = window_candidates(clicks, state.occurred_us, params.window_us)
    ordered: list[tuple[ClickRef, ShareRef]] = []
    for click in (reversed(candidates) if params.model == "last_click" else candidates):
        share = network.shares.get(click.share_id)
        require(share is not None, f"click {click.event_id!r} names an unknown share")
        ordered.append((click, share))  # type: ignore[arg-type]
    by_product: dict[str, tuple[ClickRef, ShareRef] | None] = {}
    winners: list[tuple[ClickRef, ShareRef] | None] = []
    for line in state.lines:
        product_id = line.product_id
        if product_id not in by_product:
            found = None
            for pair in ordered:
                share = pair[1]
                if covers(params.scope, share.merchant_id, share.product_id, state.merchant_id, product_id):
                    found = pair
                    break
            by_product[product_id] = found
        winners.append(by_product[product_id])
    return winners


def decide_groups(state: OrderState, params: Params, clicks: Sequence[ClickRef], network: Network) -> tuple[Group, ...]:
    """The commission groups of an order under ``scope = "product"``, by promoter."""
    if not clicks:
        return ()
    members: dict[str, list[int]] = {}
    won: dict[int, ClickRef] = {}
    for i, pair in enumerate(line_winners(state, params, clicks, network)):
        if pair is not None:
            members.setdefault(pair[1].promoter_id, []).append(i)
            won[i] = pair[0]
    groups = []
    for p1 in sorted(members):
        indexes = members[p1]
        c = l1 = l2 = 0
        for i in indexes:
            line = state.lines[i]
            c += line.commissionable_minor
            l1 += line.level1_minor
            l2 += line.level2_minor
        cap = order_cap(c, params.order_cap_bp, params.order_cap_minor)
        binding, capped, level1, level2, effect = pays(p1, l1, l2, cap, state, params, network)
        groups.append(Group(tuple(indexes), tuple(won[i] for i in indexes), c, cap, level1, level2,
                            binding, capped, effect))
        check_order_amounts(capped[0], capped[1], cap, 0, c)
    return tuple(groups)


def level1_of(groups: Sequence[Group]) -> set[str]:
    return {g.level1.promoter_id for g in groups}


def posted_entries(state: OrderState) -> list[tuple[int, str, str, int]]:
    """What is posted under ``scope = "product"``: (level, promoter, group, amount).
    A row written before groups were recorded has none: a level-1 entry is its
    promoter's group, a level-2 one's group is unknown ("")."""
    groups = state.posted_groups
    if len(groups) != len(state.posted):
        groups = tuple(promoter if level == 1 else "" for level, promoter, _ in state.posted)
    return [(level, promoter, group, amount) for (level, promoter, amount), group in zip(state.posted, groups)]


def grouped(transfer: Transfer, level: int, group: str) -> Transfer:
    """A level-2 transfer carries its group (recorded in the record's ``groups``);
    a level-1 transfer's group is its promoter."""
    if level != 2 or not group:
        return transfer
    t = transfer
    return GroupedTransfer(t.kind, t.promoter_id, t.currency, t.amount_minor, t.debit, t.credit, t.order_id, t.level,
                           t.merchant_id, t.rules_version, group)


def post_groups(state: OrderState, transfers: list[Transfer], groups: Sequence[Group] | None = None) -> None:
    """Post the difference between what ``state.groups`` (or ``groups``: ()
    for a rejection, SPEC §16) pays now, after refunds (per group and level,
    floor(L × (C − R) / C) with the order's C and R), and what is posted, per
    (level, promoter, group): one upline's level 2 of two groups is two
    postings, each with its group (the caller saves ``state``)."""
    c, r = state.commissionable_minor, state.refunded_minor
    want: dict[tuple[int, str, str], int] = {}
    for group in (state.groups if groups is None else groups):
        p1 = group.level1.promoter_id
        for level, beneficiary in ((1, group.level1), (2, group.level2)):
            if beneficiary is not None:
                amount = after_refunds(beneficiary.amount_minor, c, r)
                if amount:
                    key = (level, beneficiary.promoter_id, p1)
                    want[key] = want.get(key, 0) + amount
    have = {(level, promoter, group): amount for level, promoter, group, amount in posted_entries(state)}
    if want == have:
        return
    bucket = PAYABLE if state.settled else PENDING
    for key in sorted(have.keys() | want.keys()):
        delta = want.get(key, 0) - have.get(key, 0)
        if delta > 0:
            transfers.append(grouped(move(state, key[0], key[1], delta, EXPENSE, bucket), key[0], key[2]))
        elif delta < 0:
            transfers.append(grouped(move(state, key[0], key[1], -delta, bucket, EXPENSE), key[0], key[2]))
    entries = sorted(want.items())
    state.posted = tuple((level, promoter, amount) for (level, promoter, _), amount in entries)
    state.posted_groups = tuple(group for (_, _, group), _ in entries)
