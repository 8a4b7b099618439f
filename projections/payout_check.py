"""``audit replay``'s check of every payout and adjustment (SPEC §12), in bounded memory.

A payout names the store position whose balances it paid (``balances_at``).
Each line must pay exactly the payable there, and no balance that was due
(payable > 0 and ≥ the rules' ``min_payout``) may be left out.

- **In the audit's pass**, a payout is checked against the balances rebuilt so
  far, with the payable deltas of the segments committed after its
  ``balances_at`` undone: the deltas of the last ``LOOKBACK_SEGMENTS``
  segments are kept (a payout reads its balances just before it commits).
- **A second pass** checks the others, however far back their balances lie:
  the first pass keeps only (balances_at, treasury position) for each; the
  second folds the payable balances again and, when it reaches a payout's
  ``balances_at``, reads that payout's record from the store and checks it.
  Memory: the payable balances once, plus two integers per deferred payout.
- A payout without a balances position cannot be checked: a failure, as is
  one whose record cannot be read back.
- An adjustment must move exactly its amount between ``adjustment`` and
  ``payable`` of its promoter and currency (the direction by its sign).

Kept apart from the audit's orchestration (``projections.audit``): it is fed
records and segments and answers failure lines and counts.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Iterable

from ledger.books import TREASURY, Books
from ledger.config import rules_from_toml_text
from ledger.records import ADJUSTMENT, PAYABLE, Adjusted, PaidOut, RecordMoney, SegmentView, decode_segment_money
from ledger.store import Store

LOOKBACK_SEGMENTS = 64  # segments whose payable deltas the first pass keeps
PAYOUT_LINES_SHOWN = 3  # failure lines per payout, then one summary line

Key = tuple[str, str]  # (promoter_id, currency)


@dataclass
class PayoutCounts:
    payouts: int = 0  # payouts met
    checked_in_pass: int = 0
    checked_second_pass: int = 0
    adjustments: int = 0  # adjustments checked

    @property
    def checked(self) -> int:
        return self.checked_in_pass + self.checked_second_pass


class PayoutCheck:
    """Feed it the audit's pass in commit order: ``rules`` for each treasury
    rules record, ``payout`` / ``adjustment`` for each such treasury record
    (before its segment is folded), ``segment_done`` after each segment; then
    ``finish`` runs the second pass. Failure lines name journal and position."""

    def __init__(self) -> None:
        self.recent: deque[tuple[int, dict[Key, int]]] = deque(maxlen=LOOKBACK_SEGMENTS)
        self.deferred: list[tuple[int, int]] = []  # (balances_at, treasury position)
        self.min_payout: list[int] = []  # per treasury rules version
        self.counts = PayoutCounts()

    def rules(self, rules_toml: str | None) -> None:
        if rules_toml is not None:
            self.min_payout.append(rules_from_toml_text(rules_toml).min_payout_minor)

    def segment_done(self, notification_id: int, segment: SegmentView[RecordMoney]) -> None:
        self.recent.append((notification_id, payable_deltas(segment.records)))

    def payout(self, rebuilt: dict[Key, list[int]], at: int, record: RecordMoney) -> list[str]:
        """Check against ``rebuilt`` (the balances folded up to the segment before this payout's) when
        its balances position lies within the kept deltas; otherwise defer it to the second pass."""
        self.counts.payouts += 1
        balances_at = record.balances_at or 0
        if balances_at <= 0:
            return [f"{_where(at)}: recorded without the balances position it paid from: it cannot be checked"]
        oldest_kept = self.recent[0][0] if self.recent else None
        if oldest_kept is not None and oldest_kept > balances_at + 1 and len(self.recent) == LOOKBACK_SEGMENTS:
            self.deferred.append((balances_at, at))
            return []
        payable = {key: row[1] for key, row in rebuilt.items()}
        for pos, deltas in self.recent:  # undo what was committed after the balances it paid from
            if pos > balances_at:
                for key, delta in deltas.items():
                    payable[key] = payable.get(key, 0) - delta
        self.counts.checked_in_pass += 1
        return self._compare(at, payable, _lines(record.transfers), record.rules_version or 0, _held(record.held))

    def adjustment(self, at: int, record: Adjusted) -> list[str]:
        self.counts.adjustments += 1
        debit, credit = (ADJUSTMENT, PAYABLE) if record.amount_minor > 0 else (PAYABLE, ADJUSTMENT)
        expected = [(record.promoter_id, record.currency, abs(record.amount_minor), debit, credit)]
        moved = [(t.promoter_id, t.currency, t.amount_minor, t.debit, t.credit) for t in record.transfers]
        if moved != expected:
            return [f"{_where(at)}: adjustment of {record.promoter_id} {record.currency} {record.amount_minor} "
                    f"moves {moved} instead of {expected}"]
        return []

    def finish(self, store: Store) -> list[str]:
        """The second pass, for the payouts whose balances lay too far back."""
        if not self.deferred:
            return []
        pending = sorted(self.deferred)
        self.deferred = []
        books = Books(store)
        payable: dict[Key, int] = {}
        failures: list[str] = []
        i = 0
        for notification_id, _, _, stored in store.notifications():
            while i < len(pending) and pending[i][0] < notification_id:
                failures += self._check_stored(books, pending[i][1], payable)
                i += 1
            if i == len(pending):
                break
            for key, delta in payable_deltas(decode_segment_money(stored).records).items():
                payable[key] = payable.get(key, 0) + delta
        for _, at in pending[i:]:
            failures += self._check_stored(books, at, payable)
        return failures

    def _check_stored(self, books: Books, at: int, payable: dict[Key, int]) -> list[str]:
        record = books.record_at(TREASURY, at)
        if not isinstance(record, PaidOut):
            return [f"{_where(at)}: the payout cannot be read back for its check (found {type(record).__name__})"]
        self.counts.checked_second_pass += 1
        return self._compare(at, payable, _lines(record.transfers), record.rules_version, _held(record.held))

    def _compare(self, at: int, payable: dict[Key, int], paid: dict[Key, int], rules_version: int,
                 held: set[Key]) -> list[str]:
        """Each paid line is the payable there; every due line was paid, but
        those of promoters held then (SPEC §16: the payout lists them as skipped)."""
        failures = []
        for key, amount in sorted(paid.items()):
            if payable.get(key, 0) != amount:
                failures.append(f"{_where(at)}: paid {key[0]} {key[1]} {amount}, but payable there was {payable.get(key, 0)}")
        minimum = self.min_payout[rules_version - 1] if 0 < rules_version <= len(self.min_payout) else None
        if minimum is not None:
            for key, amount in sorted(payable.items()):
                if key not in paid and key not in held and amount > 0 and amount >= minimum:
                    failures.append(f"{_where(at)}: {key[0]} {key[1]} payable {amount} ≥ min_payout {minimum} was not paid")
        if len(failures) > PAYOUT_LINES_SHOWN:
            failures = failures[:PAYOUT_LINES_SHOWN] + [
                f"{_where(at)}: … and {len(failures) - PAYOUT_LINES_SHOWN} more lines of this payout disagree"]
        return failures


def payable_deltas(records: Iterable) -> dict[Key, int]:
    """How much each (promoter, currency)'s payable moved in these records."""
    deltas: dict[Key, int] = {}
    for record in records:
        for t in record.transfers:
            signed = (t.credit == PAYABLE) - (t.debit == PAYABLE)
            if signed:
                key = (t.promoter_id, t.currency)
                deltas[key] = deltas.get(key, 0) + signed * t.amount_minor
    return deltas


def _lines(transfers: Iterable) -> dict[Key, int]:
    """What a payout paid per (promoter, currency): two lines for one key add up."""
    paid: dict[Key, int] = {}
    for t in transfers:
        key = (t.promoter_id, t.currency)
        paid[key] = paid.get(key, 0) + t.amount_minor
    return paid


def _where(at: int) -> str:
    return f"journal {TREASURY} position {at}"


def _held(lines: list[tuple[str, str, int]]) -> set[Key]:
    return {(promoter_id, currency) for promoter_id, currency, _ in lines}
