"""Commission arithmetic (SPEC §5, §6): pure integer functions, no I/O.

All amounts are integer minor units; rates are basis points. Floors are Python
``//`` on non-negative integers, so they are exact.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

from schemas.events import Line, line_discount

BP = 10_000


class LineAmounts(NamedTuple):
    sku: str
    commissionable: int  # a = quantity × unit_price − discount
    rate1_bp: int  # requested rate (line or default), before the cap
    rate2_bp: int
    r1_bp: int  # after the level cap
    r2_bp: int
    level1: int  # floor(a × r1 / 10000)
    level2: int


class OrderAmounts(NamedTuple):
    """Everything about an order's commission that does not depend on who wins."""

    commissionable: int  # C
    level1: int  # Σ floor(a × r1 / 10000), before the order cap
    level2: int
    order_cap: int  # K
    lines: tuple[LineAmounts, ...]


def line_amounts(line: Line, default1_bp: int, default2_bp: int, cap1_bp: int, cap2_bp: int) -> LineAmounts:
    a = line.quantity * line.unit_price - line_discount(line)
    rate1 = line.level1_rate_bp if line.level1_rate_bp is not None else default1_bp
    rate2 = line.level2_rate_bp if line.level2_rate_bp is not None else default2_bp
    r1, r2 = min(rate1, cap1_bp), min(rate2, cap2_bp)
    return LineAmounts(line.sku, a, rate1, rate2, r1, r2, a * r1 // BP, a * r2 // BP)


def order_amounts(
    lines: Sequence[Line],
    *,
    level1_rate_bp: int,
    level2_rate_bp: int,
    level1_cap_bp: int,
    level2_cap_bp: int,
    order_cap_bp: int,
    order_cap_amount: int | None,
) -> OrderAmounts:
    per_line = tuple(
        line_amounts(line, level1_rate_bp, level2_rate_bp, level1_cap_bp, level2_cap_bp)
        for line in lines
    )
    c = l1 = l2 = 0
    for x in per_line:
        c += x.commissionable
        l1 += x.level1
        l2 += x.level2
    cap = c * order_cap_bp // BP
    if order_cap_amount is not None:
        cap = min(cap, order_cap_amount)
    return OrderAmounts(c, l1, l2, cap, per_line)


def order_totals(lines: Sequence[Line], rates: tuple[int, int, int, int], order_cap_bp: int, order_cap_amount: int | None) -> tuple[int, int, int, int]:
    """(C, L1, L2, K) without per-line detail: the engine's hot path.

    ``rates`` is (level1_rate_bp, level2_rate_bp, level1_cap_bp, level2_cap_bp).
    Same arithmetic as ``order_amounts`` (a property test holds them equal).
    """
    default1, default2, cap1, cap2 = rates
    c = l1 = l2 = 0
    for line in lines:
        a = line.quantity * line.unit_price - (line.discount or 0)
        r1 = line.level1_rate_bp if line.level1_rate_bp is not None else default1
        r2 = line.level2_rate_bp if line.level2_rate_bp is not None else default2
        c += a
        l1 += a * (r1 if r1 < cap1 else cap1) // BP
        l2 += a * (r2 if r2 < cap2 else cap2) // BP
    cap = c * order_cap_bp // BP
    if order_cap_amount is not None and order_cap_amount < cap:
        cap = order_cap_amount
    return c, l1, l2, cap


def capped_levels(level1: int, level2: int, order_cap: int) -> tuple[int, int]:
    """Apply the order cap K: level 2 is cut first (SPEC §5)."""
    if level1 + level2 > order_cap:
        level2 = max(0, order_cap - level1)
        level1 = min(level1, order_cap)
    return level1, level2


def after_refunds(amount: int, commissionable: int, refunded: int) -> int:
    """floor(L × (C − R) / C), or 0 when C = 0 (SPEC §6)."""
    if commissionable == 0:
        return 0
    assert 0 <= refunded <= commissionable, (refunded, commissionable)
    return amount * (commissionable - refunded) // commissionable
