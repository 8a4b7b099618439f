"""Clicks moved out of memory: a private temporary SQLite file per engine.

Part of the engine's state, not a store of record: it lives and dies with the
in-memory engine (SQLite deletes a ``""`` database when its connection closes)
and is rebuilt with it when the journal is replayed. ``ledger.engine.clicks``
decides what to move here and takes a buyer's clicks back before any decision that could need
them, so outcomes never depend on what is resident (see ``ledger.engine``).

Written often, read rarely: each ``put`` writes one msgpack blob per hash
partition of buyers (no per-click row, no index on buyer); ``take`` decodes the
blobs of one partition and writes back what belongs to other buyers.
"""

from __future__ import annotations

import sqlite3
from typing import Sequence

import msgspec

from ledger.invariants import require

PARTITIONS = 4_096  # take() decodes about count / PARTITIONS clicks
CACHE_KIB = 4_096  # SQLite page cache: the spill must not pin what it frees

# One buyer's clicks: (buyer_id, [(occurred_us, event_id, share_id), …])
BuyerClicks = tuple[str, Sequence[tuple[int, str, str]]]

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(list[tuple[str, list[tuple[int, str, str]]]]).decode


class ClickSpill:
    def __init__(self) -> None:
        self._db: sqlite3.Connection | None = None  # opened on first put
        self.count = 0  # clicks held here

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            # The engine is used by one thread at a time, not always the one that created it.
            db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
            db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            db.execute("PRAGMA journal_mode = OFF")
            db.execute("PRAGMA synchronous = OFF")
            db.execute("CREATE TABLE spill (part INTEGER NOT NULL, clicks BLOB NOT NULL)")
            db.execute("CREATE INDEX spill_by_part ON spill (part)")
            self._db = db
        return self._db

    def put(self, batch: list[BuyerClicks]) -> None:
        """Hold these buyers' clicks (each buyer at most once per call)."""
        if not batch:
            return
        parts: list[list[BuyerClicks]] = [[] for _ in range(PARTITIONS)]
        for item in batch:
            # str hashes are per process: fine for a spill that lives in one process.
            parts[hash(item[0]) % PARTITIONS].append(item)
        n = sum(len(clicks) for _, clicks in batch)
        db = self._conn()
        db.execute("BEGIN")
        db.executemany("INSERT INTO spill VALUES (?, ?)", [(part, _encode(items)) for part, items in enumerate(parts) if items])
        db.execute("COMMIT")
        self.count += n

    def take(self, buyer_id: str) -> list[tuple[int, str, str]]:
        """Remove and return one buyer's clicks as (occurred_us, event_id, share_id)."""
        if self._db is None or not self.count:
            return []
        db = self._db
        part = hash(buyer_id) % PARTITIONS
        taken: list[tuple[int, str, str]] = []
        others: list[BuyerClicks] = []
        db.execute("BEGIN")
        for (blob,) in db.execute("SELECT clicks FROM spill WHERE part = ?", (part,)).fetchall():
            for item in _decode(blob):
                if item[0] == buyer_id:
                    taken.extend(item[1])
                else:
                    others.append(item)
        if taken:
            db.execute("DELETE FROM spill WHERE part = ?", (part,))
            if others:
                db.execute("INSERT INTO spill VALUES (?, ?)", (part, _encode(others)))
        db.execute("COMMIT")
        self.count -= len(taken)
        require(self.count >= 0, "click spill count below zero")
        return taken
