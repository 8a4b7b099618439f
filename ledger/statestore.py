"""The engine's working state in the store: a sorted key-value table per journal.

Like Kafka Streams' state store with its changelog, but the changelog is the
journal itself and the store is a table beside it, written in the same
transaction as each segment (``JournalStore.append(..., state=...)``): after a
crash the state is exactly the journal's, never ahead of it or behind it.

One table, ``ledger_state(journal, k, v)``, the same on SQLite and PostgreSQL
(and a dict for ``memory://``). Keys are bytes whose first byte names a
*space* (orders, clicks, event ids, …; see ``ledger.engine.tables``) and whose
byte order is the order the engine scans in (``sort_key``, ``prefixed``).
Reads go through ``StateReader``; writes are lists of ``(key, value | None)``
(None deletes) applied by the recorders inside the segment's transaction.
"""

from __future__ import annotations

import sqlite3
import threading
from bisect import bisect_left, insort
from typing import Any, Iterable, Protocol, Sequence

from ledger.statelog import Overlay

Op = tuple[bytes, "bytes | None"]  # one write: key, value (None deletes)
# The layout of the state tables, in the journal's meta row. 0: written before
# the format had a number (row-by-row writes, no changelog, buyer rows and
# caches of that version); 1: the changelog (``ledger.statelog``), buyer rows
# spilling old clicks from 4 (``Limits.cold_clicks_min``, was 32). A journal
# in another format is refused until ``commission-ledger migrate``.
STATE_FORMAT = 1

SQLITE_STATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS ledger_state ("
    "journal INTEGER NOT NULL, k BLOB NOT NULL, v BLOB NOT NULL, "
    "PRIMARY KEY (journal, k)) WITHOUT ROWID"
)
POSTGRES_STATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS ledger_state ("
    "journal INTEGER NOT NULL, k BYTEA NOT NULL, v BYTEA NOT NULL, "
    "PRIMARY KEY (journal, k))"
)
GET_CHUNK = 8_000  # keys per IN (…) query: a batch's keys in one query, under SQLite's 32,766 variables
SIGN_BIT = 1 << 63
SQLITE_PAGE_CACHE_KIB = 16_384  # per connection (a pool holds several): the hot part of the state B-tree
WAL_CHECKPOINT_PAGES = 20_000  # ~80 MB of WAL between checkpoints
_tuned: set[int] = set()


def tune_sqlite(cursor: Any) -> None:
    """Tune a connection of the eventsourcing pool for the state table, once:
    a page cache that holds its hot part (SQLite's default, 2 MB, makes every
    batch's random inserts and lookups read pages again), and fewer checkpoints."""
    raw = getattr(cursor, "sqlite_cursor", cursor)  # eventsourcing wraps its cursors
    connection = raw.connection
    if id(connection) not in _tuned:
        connection.execute(f"PRAGMA cache_size = -{SQLITE_PAGE_CACHE_KIB}")
        # A batch's state writes touch pages all over the state B-tree: with the
        # default (a checkpoint every 1,000 WAL pages) every commit paid a
        # checkpoint and its fsyncs; one every WAL_CHECKPOINT_PAGES rewrites a
        # hot page into the database once for many commits (300k ingest: 21 → 16 s).
        connection.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
        _tuned.add(id(connection))


# ------------------------------------------------------------------ keys
def sort_key(instant_us: int, event_id: str) -> bytes:
    """Bytes that sort like (instant_us, event_id) in Python: a fixed-width
    big-endian instant, then the UTF-8 id (UTF-8 byte order is code point order)."""
    return (instant_us + SIGN_BIT).to_bytes(8, "big") + event_id.encode("utf-8", "surrogatepass")


def prefixed(text: str) -> bytes:
    """A length-prefixed string: keys that start with it sort together and
    never with another string's (a prefix scan is [prefixed(s), prefixed(s) + FF))."""
    data = text.encode("utf-8", "surrogatepass")
    return len(data).to_bytes(2, "big") + data


def text(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


# --------------------------------------------------------------- reading
class StateReader(Protocol):
    def get_many(self, journal: int, keys: Sequence[bytes]) -> dict[bytes, bytes]:
        """The stored values of those keys that exist."""

    def scan(self, journal: int, lo: bytes, hi: bytes, limit: int | None = None) -> list[tuple[bytes, bytes]]:
        """(key, value) with lo ≤ key < hi, in key order, at most ``limit``."""


class SQLiteState:
    """Reads through the eventsourcing SQLite datastore's connection pool
    (WAL: readers see what is committed, while a writer writes): the table
    and the unfolded changelog rows (``ledger.statelog``) in one snapshot."""

    logged = True  # the store has a changelog (a scratch store does not)

    def __init__(self, datastore: Any) -> None:
        self.datastore = datastore
        self._overlays: dict[int, Overlay] = {}
        self._lock = threading.Lock()

    def _overlay(self, c: Any, journal: int) -> "Overlay | None":
        if not self.logged:
            return None
        with self._lock:
            overlay = self._overlays.get(journal)
            if overlay is None:
                overlay = self._overlays[journal] = Overlay()
            overlay.sync(c, journal)
            return overlay if overlay.live() else None

    def adopt(self, journal: int, version: int, delta: list[Op]) -> None:
        """This process committed ``delta`` (sorted) as ``journal``'s changelog row ``version``."""
        with self._lock:
            overlay = self._overlays.get(journal)
            if overlay is not None:
                overlay.adopt(version, delta)

    def get_many(self, journal: int, keys: Sequence[bytes]) -> dict[bytes, bytes]:
        found: dict[bytes, bytes] = {}
        with self.datastore.transaction(commit=False) as c:
            c = getattr(c, "sqlite_cursor", c)
            tune_sqlite(c)
            c.row_factory = None  # plain tuples (the pool's connections make sqlite3.Row objects)
            overlay = self._overlay(c, journal)
            for i in range(0, len(keys), GET_CHUNK):
                chunk = keys[i:i + GET_CHUNK]
                c.execute(f"SELECT k, v FROM ledger_state WHERE journal = ? AND k IN ({','.join('?' * len(chunk))})",
                          (journal, *chunk))
                found.update(c.fetchall())
        if overlay is not None:
            for key in keys:
                held, value = overlay.get(key)
                if held:
                    if value is None:
                        found.pop(key, None)
                    else:
                        found[key] = value
        return found

    def scan(self, journal: int, lo: bytes, hi: bytes, limit: int | None = None) -> list[tuple[bytes, bytes]]:
        with self.datastore.transaction(commit=False) as c:
            c = getattr(c, "sqlite_cursor", c)
            tune_sqlite(c)
            c.row_factory = None
            overlay = self._overlay(c, journal)
            query = "SELECT k, v FROM ledger_state WHERE journal = ? AND k >= ? AND k < ? ORDER BY k LIMIT ?"
            if overlay is None:
                c.execute(query, (journal, lo, hi, -1 if limit is None else limit))
                return c.fetchall()
            # Page through the table; each page's key range takes the unfolded
            # writes within it (deletes may empty a page: then read on).
            out: list[tuple[bytes, bytes]] = []
            start = lo
            while True:
                c.execute(query, (journal, start, hi, -1 if limit is None else limit))
                rows = c.fetchall()
                cut = hi if limit is None or len(rows) < limit else rows[-1][0] + b"\x00"
                merged = dict(rows)
                for k, v in overlay.range(start, cut).items():
                    if v is None:
                        merged.pop(k, None)
                    else:
                        merged[k] = v
                out.extend(sorted(merged.items()))
                if limit is None or len(out) >= limit or cut >= hi:
                    return out if limit is None else out[:limit]
                start = cut


def sqlite_write(cursor: Any, journal: int, ops: Sequence[Op]) -> None:
    """Apply writes inside the caller's SQLite transaction."""
    tune_sqlite(cursor)
    puts = [(journal, k, v) for k, v in ops if v is not None]
    deletes = [(journal, k) for k, v in ops if v is None]
    if deletes:
        cursor.executemany("DELETE FROM ledger_state WHERE journal = ? AND k = ?", deletes)
    if puts:
        cursor.executemany("INSERT OR REPLACE INTO ledger_state (journal, k, v) VALUES (?, ?, ?)", puts)


class PostgresState:
    def __init__(self, datastore: Any) -> None:
        self.datastore = datastore

    def get_many(self, journal: int, keys: Sequence[bytes]) -> dict[bytes, bytes]:
        found: dict[bytes, bytes] = {}
        with self.datastore.transaction(commit=False) as c:
            for i in range(0, len(keys), GET_CHUNK):
                c.execute("SELECT k, v FROM ledger_state WHERE journal = %s AND k = ANY(%s)",
                          (journal, list(keys[i:i + GET_CHUNK])))
                found.update((bytes(row["k"]), bytes(row["v"])) for row in c.fetchall())
        return found

    def scan(self, journal: int, lo: bytes, hi: bytes, limit: int | None = None) -> list[tuple[bytes, bytes]]:
        with self.datastore.transaction(commit=False) as c:
            c.execute("SELECT k, v FROM ledger_state WHERE journal = %s AND k >= %s AND k < %s ORDER BY k LIMIT %s",
                      (journal, lo, hi, limit))
            return [(bytes(row["k"]), bytes(row["v"])) for row in c.fetchall()]


def postgres_write(cursor: Any, journal: int, ops: Sequence[Op]) -> None:
    """Apply writes inside the caller's PostgreSQL transaction: one statement
    for the deletes and one for the upserts, the keys and values sent as
    arrays (a statement per row costs a round trip each, even pipelined)."""
    deletes = [k for k, v in ops if v is None]
    keys = [k for k, v in ops if v is not None]
    if deletes:
        cursor.execute("DELETE FROM ledger_state WHERE journal = %s AND k = ANY(%s)", (journal, deletes))
    if keys:
        values = [v for _, v in ops if v is not None]
        cursor.execute(
            "INSERT INTO ledger_state (journal, k, v) SELECT %s, k, v FROM unnest(%s::bytea[], %s::bytea[]) AS t(k, v) "
            "ON CONFLICT (journal, k) DO UPDATE SET v = EXCLUDED.v", (journal, keys, values))


class MemoryState:
    """``memory://`` and scratch state: sorted keys per journal, guarded by a
    lock (the memory recorder writes under its own lock, readers take this one)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[int, dict[bytes, bytes]] = {}
        self._keys: dict[int, list[bytes]] = {}

    def get_many(self, journal: int, keys: Sequence[bytes]) -> dict[bytes, bytes]:
        with self._lock:
            values = self._values.get(journal, {})
            return {k: values[k] for k in keys if k in values}

    def scan(self, journal: int, lo: bytes, hi: bytes, limit: int | None = None) -> list[tuple[bytes, bytes]]:
        with self._lock:
            values, keys = self._values.get(journal, {}), self._keys.get(journal, [])
            out = []
            for i in range(bisect_left(keys, lo), len(keys)):
                if keys[i] >= hi or (limit is not None and len(out) >= limit):
                    break
                out.append((keys[i], values[keys[i]]))
            return out

    def write(self, journal: int, ops: Iterable[Op]) -> None:
        with self._lock:
            values = self._values.setdefault(journal, {})
            keys = self._keys.setdefault(journal, [])
            for k, v in ops:
                if v is None:
                    if values.pop(k, None) is not None:
                        del keys[bisect_left(keys, k)]
                else:
                    if k not in values:
                        insort(keys, k)
                    values[k] = v

    def dump(self, journal: int) -> list[tuple[bytes, bytes]]:
        with self._lock:
            values = self._values.get(journal, {})
            return [(k, values[k]) for k in self._keys.get(journal, [])]


class ScratchState(SQLiteState):
    """A private temporary SQLite file: the bounded-memory state of a
    re-execution (``audit replay``), deleted when closed."""

    logged = False

    def __init__(self) -> None:
        self._db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode = OFF")
        self._db.execute("PRAGMA synchronous = OFF")
        self._db.execute("PRAGMA cache_size = -16384")
        self._db.execute(SQLITE_STATE_TABLE)
        super().__init__(_OneConnection(self._db))

    def write(self, journal: int, ops: Sequence[Op]) -> None:
        cursor = self._db.cursor()
        cursor.execute("BEGIN")
        sqlite_write(cursor, journal, ops)
        cursor.execute("COMMIT")

    def close(self) -> None:
        self._db.close()


class _OneConnection:
    """The datastore interface SQLiteState reads through, over one connection."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def transaction(self, *, commit: bool) -> "_Cursor":
        return _Cursor(self._db.cursor())


class _Cursor:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self.cursor = cursor

    def __enter__(self) -> sqlite3.Cursor:
        return self.cursor

    def __exit__(self, *exc: object) -> None:
        self.cursor.close()
