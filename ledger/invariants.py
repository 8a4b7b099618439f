"""Invariants of the books, checked explicitly: ``python -O`` strips ``assert``,
these stay. A failure is a bug in the ledger, never bad input (bad input is a
dead letter), so it stops the work at hand with InvariantError."""

from __future__ import annotations

from typing import Iterable

BUCKETS = frozenset({"expense", "pending", "payable", "paid", "adjustment"})


class InvariantError(RuntimeError):
    """An invariant of the ledger does not hold (a bug, not bad input)."""


def require(condition: bool, message: str) -> None:
    """Raise InvariantError(message) unless ``condition`` holds."""
    if not condition:
        raise InvariantError(message)


def check_transfer(amount_minor: int, debit: str, credit: str) -> None:
    """A transfer moves a positive amount between two different known buckets."""
    if amount_minor <= 0 or debit == credit or debit not in BUCKETS or credit not in BUCKETS:
        raise InvariantError(f"malformed transfer: {amount_minor} from {debit} to {credit}")


def check_order_amounts(level1_minor: int, level2_minor: int, order_cap_minor: int,
                        refunded_minor: int, commissionable_minor: int) -> None:
    """Level 1 + level 2 ≤ the order cap K ≤ C, and 0 ≤ refunds R ≤ C (SPEC §5, §6)."""
    if level1_minor < 0 or level2_minor < 0 or level1_minor + level2_minor > order_cap_minor:
        raise InvariantError(f"levels {level1_minor} + {level2_minor} exceed the order cap {order_cap_minor}")
    if not 0 <= refunded_minor <= commissionable_minor or order_cap_minor > commissionable_minor:
        raise InvariantError(f"refunds {refunded_minor} / cap {order_cap_minor} outside commissionable {commissionable_minor}")


def check_balance_row(promoter_id: str, currency: str, pending_minor: int, paid_minor: int) -> None:
    """Pending and paid never go negative (payable may: a clawback after payout)."""
    if pending_minor < 0 or paid_minor < 0:
        raise InvariantError(f"{promoter_id} {currency}: pending {pending_minor} / paid {paid_minor} below zero")


def check_books_balance(legs: Iterable[tuple[str, int]]) -> None:
    """Double entry: per currency, Σ debits = Σ credits ((currency, signed amount) legs)."""
    totals: dict[str, int] = {}
    for currency, signed_minor in legs:
        totals[currency] = totals.get(currency, 0) + signed_minor
    unbalanced = {c: v for c, v in totals.items() if v}
    if unbalanced:
        raise InvariantError(f"books do not balance: {unbalanced}")
