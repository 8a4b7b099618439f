"""Attribution (SPEC §3): which click, if any, wins an order. Pure functions.

A buyer's candidate clicks are kept sorted by (occurred_us, event_id); only
clicks whose share is known are ever passed in.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import NamedTuple, Sequence


class ClickRef(NamedTuple):
    occurred_us: int
    event_id: str
    share_id: str


def _time(click: ClickRef) -> int:
    return click.occurred_us


def last_click(clicks: Sequence[ClickRef], order_us: int, window_us: int) -> ClickRef | None:
    """Greatest (occurred_us, event_id) with order − window ≤ t ≤ order."""
    i = bisect_right(clicks, order_us, key=_time)
    if i == 0:
        return None
    click = clicks[i - 1]
    return click if click.occurred_us >= order_us - window_us else None


def first_click(clicks: Sequence[ClickRef], order_us: int, window_us: int) -> ClickRef | None:
    """Smallest (occurred_us, event_id) with order − window ≤ t ≤ order."""
    i = bisect_left(clicks, order_us - window_us, key=_time)
    if i == len(clicks):
        return None
    click = clicks[i]
    return click if click.occurred_us <= order_us else None


def lock_binding(clicks: Sequence[ClickRef], order_us: int, lock_us: int) -> ClickRef | None:
    """The click that started the binding active at ``order_us`` (customer_lock).

    A binding started by click c is active on [c.t, c.t + lock); a click inside
    an active binding neither starts, extends nor renews one.
    """
    binding = last_binding_start(clicks[:bisect_right(clicks, order_us, key=_time)], lock_us)
    if binding is not None and order_us < binding.occurred_us + lock_us:
        return binding
    return None


def last_binding_start(clicks: Sequence[ClickRef], lock_us: int) -> ClickRef | None:
    """The last click of ``clicks`` that started a binding (customer_lock).

    What follows depends on the clicks before it only through this one: a
    later click starts a binding iff it is at least ``lock_us`` after it or
    after a later start.
    """
    binding: ClickRef | None = None
    for click in clicks:
        if binding is None or click.occurred_us >= binding.occurred_us + lock_us:
            binding = click
    return binding


def window_candidates(clicks: Sequence[ClickRef], order_us: int, window_us: int) -> Sequence[ClickRef]:
    """All candidates of a window model, in (occurred_us, event_id) order."""
    lo = bisect_left(clicks, order_us - window_us, key=_time)
    hi = bisect_right(clicks, order_us, key=_time)
    return clicks[lo:hi]


def winning_click(model: str, clicks: Sequence[ClickRef], order_us: int, window_us: int, lock_us: int) -> ClickRef | None:
    if model == "last_click":
        return last_click(clicks, order_us, window_us)
    if model == "first_click":
        return first_click(clicks, order_us, window_us)
    if model != "customer_lock":
        raise ValueError(f"unknown attribution model {model!r}")
    return lock_binding(clicks, order_us, lock_us)
