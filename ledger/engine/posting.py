"""Posting (double entry): move each level of an order from what is posted to
what its decision now pays, as balanced transfers; history is never edited,
the difference is posted (SPEC §6, §8)."""

from __future__ import annotations

from ledger.commission import after_refunds
from ledger.engine.state import Beneficiary, Decision, OrderState, Posted
from ledger.invariants import check_transfer
from ledger.records import EXPENSE, PAYABLE, PENDING, Transfer


def post(state: OrderState, decision: Decision, transfers: list[Transfer]) -> None:
    """Post the difference between what ``decision`` pays now and what is
    posted (the caller saves ``state``)."""
    state.posted1 = _post_level(state, 1, decision.level1, state.posted1, transfers)
    state.posted2 = _post_level(state, 2, decision.level2, state.posted2, transfers)


def _post_level(state: OrderState, level: int, beneficiary: Beneficiary | None, have: Posted,
                transfers: list[Transfer]) -> Posted:
    """Move one level from what is posted (``have``) to what is due; return it."""
    bucket = PAYABLE if state.settled else PENDING
    want = None
    if beneficiary is not None:
        amount = after_refunds(beneficiary.amount_minor, state.commissionable_minor, state.refunded_minor)
        if amount:
            want = (beneficiary.promoter_id, amount)
    if want == have:
        return want
    if have is not None and (want is None or want[0] != have[0]):
        transfers.append(move(state, level, have[0], have[1], bucket, EXPENSE))
        have = None
    if want is not None:
        delta = want[1] - (have[1] if have is not None else 0)
        if delta > 0:
            transfers.append(move(state, level, want[0], delta, EXPENSE, bucket))
        elif delta < 0:
            transfers.append(move(state, level, want[0], -delta, bucket, EXPENSE))
    return want


def move(state: OrderState, level: int, promoter_id: str, amount_minor: int, debit: str, credit: str) -> Transfer:
    """One transfer of an order's commission at ``level``."""
    check_transfer(amount_minor, debit, credit)
    if debit == EXPENSE:
        kind = "accrual"
    elif debit == PENDING and credit == EXPENSE:
        kind = "reversal"
    elif debit == PAYABLE and credit == EXPENSE:
        kind = "clawback"
    else:
        kind = "settlement"
    return Transfer(kind, promoter_id, state.currency, amount_minor, debit, credit,
                    state.order_id, level, state.merchant_id, state.rules_version)
