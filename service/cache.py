"""The service's read model: the live balances kept in memory and caught up
from the store's notification log on each request (one cheap query when
nothing changed, a fold of only the new segments when something did)."""

from __future__ import annotations

import gc
import threading
from bisect import bisect_right

from ledger.records import dead_letters_of, decode_segment_dated
from ledger.store import Store
from ledger.records import fold_transfer
from projections.balances import BalanceRow
from projections.statements import StatementEntry, StatementIndex


class BalancesCache:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self.position = 0
        self.records = 0
        self.balances: dict[tuple[str, str], list[int]] = {}
        self.outcomes: dict[str, int] = {}
        self.dead_letters: dict[str, int] = {}
        # Per-promoter statements: O(entries of that promoter), not O(journal).
        self.statements = StatementIndex()
        self._rows: list[BalanceRow] | None = None
        self._keys: list[tuple[str, str]] = []
        self._seen = -1
        self.refresh()

    def refresh(self) -> None:
        # The newest notification of any kind (segments, snapshots, keys…):
        # one indexed query when nothing was written since the last look.
        newest = self.store.recorder.max_notification_id() or 0
        if newest == self._seen:
            return
        with self._lock:
            self._seen = newest
            before = self.position
            for notification_id, journal, _, state in self.store.notifications(after=self.position):
                segment = decode_segment_dated(state)
                for offset, record in enumerate(segment.records):
                    self.outcomes[record.type] = self.outcomes.get(record.type, 0) + 1
                    for t in record.transfers:
                        fold_transfer(self.balances, t)
                    self.statements.add_record(journal, segment.first + offset, record)
                    for letter in dead_letters_of(record):
                        self.dead_letters[letter.reason] = self.dead_letters.get(letter.reason, 0) + 1
                self.records += len(segment.records)
                self.position = notification_id
            if self.position != before:
                self._rows = None
                gc.freeze()  # long-lived read model: keep it out of every GC pass

    def statement(self, promoter_id: str) -> list[StatementEntry]:
        self.refresh()
        return self.statements.entries.get(promoter_id, [])

    def rows(self) -> list[BalanceRow]:
        """All rows sorted by (promoter_id, currency), rebuilt only after a change."""
        self.refresh()
        rows = self._rows
        if rows is None:
            with self._lock:
                rows = [BalanceRow(p, c, *v) for (p, c), v in sorted(self.balances.items())]
                self._keys = [(r.promoter_id, r.currency) for r in rows]
                self._rows = rows
                gc.freeze()
        return rows

    def page(self, *, currency: str | None, after: tuple[str, str] | None, limit: int) -> tuple[list[BalanceRow], bool]:
        """Up to ``limit`` rows after the cursor key; and whether more remain."""
        rows = self.rows()
        start = bisect_right(self._keys, after) if after is not None else 0
        out: list[BalanceRow] = []
        i = start
        while i < len(rows) and len(out) < limit:
            if currency is None or rows[i].currency == currency:
                out.append(rows[i])
            i += 1
        more = any(currency is None or r.currency == currency for r in rows[i:])  # stops at the first match
        return out, more
