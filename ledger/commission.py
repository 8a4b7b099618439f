"""Commission arithmetic (SPEC §5, §6): pure integer functions, no I/O.

All amounts are integer minor units; rates are basis points. Floors are Python
``//`` on non-negative integers, so they are exact.
"""

from __future__ import annotations

from typing import Final, NamedTuple, Sequence

from schemas.events import Line, line_discount

BP: Final = 10_000


class LineAmounts(NamedTuple):
    sku: str
    commissionable_minor: int  # a = quantity × unit_price − discount
    rate1_bp: int  # requested rate (line or default), before the cap
    rate2_bp: int
    r1_bp: int  # after the level cap
    r2_bp: int
    level1_minor: int  # floor(a × r1 / 10000)
    level2_minor: int


class OrderAmounts(NamedTuple):
    """Everything about an order's commission that does not depend on who wins."""

    commissionable_minor: int  # C
    level1_minor: int  # Σ floor(a × r1 / 10000), before the order cap
    level2_minor: int
    order_cap_minor: int  # K
    lines: tuple[LineAmounts, ...]


def line_amounts(line: Line, default1_bp: int, default2_bp: int, cap1_bp: int, cap2_bp: int) -> LineAmounts:
    a = line.quantity * line.unit_price - line_discount(line)
    rate1 = line.level1_rate_bp if line.level1_rate_bp is not None else default1_bp
    rate2 = line.level2_rate_bp if line.level2_rate_bp is not None else default2_bp
    r1, r2 = min(rate1, cap1_bp), min(rate2, cap2_bp)
    return LineAmounts(line.sku, a, rate1, rate2, r1, r2, a * r1 // BP, a * r2 // BP)


def order_amounts(lines: Sequence[Line], rates_bp: tuple[int, int, int, int], order_cap_bp: int,
                  order_cap_minor: int | None) -> OrderAmounts:
    """Per-line detail (explanations). ``rates_bp`` is (level1_rate_bp,
    level2_rate_bp, level1_cap_bp, level2_cap_bp)."""
    per_line = tuple(line_amounts(line, *rates_bp) for line in lines)
    c = l1 = l2 = 0
    for x in per_line:
        c += x.commissionable_minor
        l1 += x.level1_minor
        l2 += x.level2_minor
    return OrderAmounts(c, l1, l2, order_cap(c, order_cap_bp, order_cap_minor), per_line)


def order_cap(commissionable_minor: int, order_cap_bp: int, order_cap_minor: int | None) -> int:
    """K = floor(C × order_cap_bp / 10000), at most order_cap_amount when set."""
    cap = commissionable_minor * order_cap_bp // BP
    if order_cap_minor is not None and order_cap_minor < cap:
        cap = order_cap_minor
    return cap


def order_totals(lines: Sequence[Line], rates_bp: tuple[int, int, int, int], order_cap_bp: int,
                 order_cap_minor: int | None) -> tuple[int, int, int, int]:
    """(C, L1, L2, K) without per-line detail: the engine's hot path.

    Same arithmetic as ``order_amounts`` (a property test holds them equal).
    """
    default1, default2, cap1, cap2 = rates_bp
    c = l1 = l2 = 0
    for line in lines:
        a = line.quantity * line.unit_price - (line.discount or 0)
        r1 = line.level1_rate_bp if line.level1_rate_bp is not None else default1
        r2 = line.level2_rate_bp if line.level2_rate_bp is not None else default2
        c += a
        l1 += a * (r1 if r1 < cap1 else cap1) // BP
        l2 += a * (r2 if r2 < cap2 else cap2) // BP
    return c, l1, l2, order_cap(c, order_cap_bp, order_cap_minor)


def capped_levels(level1_minor: int, level2_minor: int, order_cap_minor: int) -> tuple[int, int]:
    """Apply the order cap K: level 2 is cut first (SPEC §5)."""
    if level1_minor + level2_minor > order_cap_minor:
        level2_minor = max(0, order_cap_minor - level1_minor)
        level1_minor = min(level1_minor, order_cap_minor)
    return level1_minor, level2_minor


def after_refunds(amount_minor: int, commissionable_minor: int, refunded_minor: int) -> int:
    """floor(L × (C − R) / C), or 0 when C = 0 (SPEC §6)."""
    if commissionable_minor == 0:
        return 0
    return amount_minor * (commissionable_minor - refunded_minor) // commissionable_minor
