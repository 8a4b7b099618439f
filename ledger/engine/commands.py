"""The recorded commands: settle (SPEC §7), payout and manual adjustments."""

from __future__ import annotations

from typing import Callable, Mapping

from ledger.engine.groups import grouped, posted_entries
from ledger.engine.orders import OrderBook
from ledger.engine.posting import move
from ledger.engine.state import OrderState
from ledger.invariants import check_transfer, require
from ledger.records import ADJUSTMENT, PAID, PAYABLE, PENDING, Transfer


def settle(orders: OrderBook, as_of_us: int, lock_us: int, limit: int = 0,
           review: Callable[[OrderState], bool] | None = None) -> tuple[list[str], list[Transfer]]:
    """Settle every known order with occurred + lock_period ≤ as_of (the first
    ``limit`` of them, in (occurred, event_id) order, when ``limit`` > 0): what
    is posted moves from pending to payable and the order is frozen. A due
    order for which ``review`` says True is held for review instead (SPEC §16)."""
    require(lock_us >= 0 and limit >= 0, "negative settlement lock period or limit")
    due = orders.due(as_of_us, lock_us, limit)
    transfers: list[Transfer] = []
    settled: list[str] = []
    for state in due:
        if review is not None and review(state):
            continue
        settled.append(state.order_id)
        for level, posted in ((1, state.posted1), (2, state.posted2)):
            if posted is not None:
                transfers.append(move(state, level, posted[0], posted[1], PENDING, PAYABLE))
        if state.posted:  # commission groups (SPEC §14)
            for level, promoter_id, group, amount_minor in posted_entries(state):
                transfers.append(grouped(move(state, level, promoter_id, amount_minor, PENDING, PAYABLE), level, group))
        orders.mark_settled(state)
    return settled, transfers


def payout(payables: Mapping[tuple[str, str], int], min_payout_minor: int, rules_version: int,
           held: Mapping[str, object] | None = None, skipped: list[tuple[str, str, int]] | None = None) -> list[Transfer]:
    """Pay every (promoter, currency) whose payable (across all journals, as
    given) is > 0 and ≥ min_payout; sorted by (promoter, currency). The lines
    of ``held`` promoters are skipped, and appended to ``skipped`` (SPEC §16)."""
    transfers = []
    for (promoter_id, currency), payable_minor in sorted(payables.items()):
        if payable_minor > 0 and payable_minor >= min_payout_minor:
            if held and promoter_id in held:
                if skipped is not None:
                    skipped.append((promoter_id, currency, payable_minor))
                continue
            transfers.append(Transfer("payout", promoter_id, currency, payable_minor, PAYABLE, PAID, rules_version=rules_version))
    return transfers


def check_recorded_payout(transfers: list[Transfer]) -> None:
    """A recorded payout's amounts were decided from every journal's balances
    at the time: they are booked as recorded, and must be payouts."""
    for t in transfers:
        require(t.kind == "payout" and t.debit == PAYABLE and t.credit == PAID, f"not a payout transfer: {t}")
        check_transfer(t.amount_minor, t.debit, t.credit)


def adjust(promoter_id: str, currency: str, amount_minor: int, rules_version: int) -> list[Transfer]:
    """A manual adjustment to payable (positive: bonus; negative: correction)."""
    require(amount_minor != 0, "zero adjustment")
    debit, credit = (ADJUSTMENT, PAYABLE) if amount_minor > 0 else (PAYABLE, ADJUSTMENT)
    return [Transfer("adjustment", promoter_id, currency, abs(amount_minor), debit, credit, rules_version=rules_version)]
