"""A small cache of decoded stored segments, shared by the live ledger and
replay."""

from __future__ import annotations

from ledger.records import Record, decode_segment
from ledger.store import JournalStore

SEGMENTS_KEPT = 4  # stored segments kept decoded for repeated event ids


class RecentSegments:
    """The last few stored segments read, kept decoded: a repeated event id's
    first occurrence is usually close behind it, and is read again."""

    def __init__(self, store: JournalStore, kept: int = SEGMENTS_KEPT) -> None:
        self.store = store
        self.kept = kept
        self._records: dict[int, list[Record]] = {}

    def records(self, version: int) -> list[Record]:
        records = self._records.get(version)
        if records is None:
            records = decode_segment(self.store.segment(version).state).records
            if len(self._records) >= self.kept:
                self._records.pop(next(iter(self._records)))
            self._records[version] = records
        return records
