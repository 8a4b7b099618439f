"""Payout balances per (promoter, currency), folded from journal transfers."""

from __future__ import annotations

from typing import Iterable

import msgspec

from ledger.records import Record, fold_records, fold_transfer, record_transfers

__all__ = ["BalanceRow", "balance_rows", "books", "fold_records", "fold_transfer"]


class BalanceRow(msgspec.Struct, frozen=True):
    promoter_id: str
    currency: str
    pending: int
    payable: int
    paid: int


def balance_rows(balances: dict[tuple[str, str], list[int]], currency: str | None = None) -> list[BalanceRow]:
    """Rows sorted by (promoter_id, currency) (SPEC §10)."""
    return [
        BalanceRow(promoter_id, cur, *row)
        for (promoter_id, cur), row in sorted(balances.items())
        if currency is None or cur == currency
    ]


def books(records: Iterable[Record]) -> dict[tuple[str, str], int]:
    """Every account's balance, promoters' and counter-accounts' alike.

    Double entry: for each currency the balances sum to zero.
    """
    accounts: dict[tuple[str, str], int] = {}
    for record in records:
        for t in record_transfers(record):
            for bucket, sign in ((t.debit, -1), (t.credit, 1)):
                owner = t.merchant_id if bucket == "expense" else ("platform" if bucket == "adjustment" else t.promoter_id)
                key = (f"{bucket}:{owner}", t.currency)
                accounts[key] = accounts.get(key, 0) + sign * t.amount_minor
    return accounts
