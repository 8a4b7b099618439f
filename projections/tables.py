"""The read models' tables, in the event store's own database, and the one
place that decides how to reach them.

- ``sqlite:///path``: the same SQLite file as the journals (our own
  connections, one per thread; WAL lets them read while a writer writes);
- ``postgresql://…``: the same PostgreSQL database, through the event store's
  connection pool;
- ``memory://``: an in-process SQLite ``:memory:`` database owned by the
  ``Store`` object (its journals live in that object too).

One SQL dialect for both engines (SQLite ≥ 3.40 and PostgreSQL 15 both take
``INSERT … ON CONFLICT … DO UPDATE``, row values and partial indexes); only the
placeholders (``?`` here, ``%s`` for psycopg), the blob type and the text
collation differ, and ``Cursor`` hides them. Text keys sort by code point on
both (SQLite's BINARY collation compares UTF-8 bytes; PostgreSQL columns are
``COLLATE "C"``), like Python's ``sorted``. Column names carry their units:
``*_minor`` (money), ``*_us`` (instants), ``store_position`` (notification id),
``position`` (a record's position in its journal).

The tables are derived data: a schema change drops them and the next catch-up
rebuilds them from the journals (``SCHEMA_VERSION``).
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import threading
import weakref
from typing import Any, Iterator, Sequence
from urllib.parse import urlsplit

from eventsourcing.persistence import PersistenceError

from ledger.store import Store, StoreError, one_line, redact

SCHEMA_VERSION = 4  # 3 (issue 19): kept counts and merchant totals, indexes by currency, recorded_max_us; 4 (issue 20): commission groups
PROJECTOR = f"readmodels/v{SCHEMA_VERSION}"  # its row in rm_tracking
SQLITE_TIMEOUT_S = 30
SQLITE_CACHE_KIB = 16 * 1024
SCHEMA_LOCK_ID = 0x726D6F64656C73  # pg_advisory_xact_lock key: "rmodels"

TABLES = (
    # Where the projector is: the store position (notification id) of the last
    # segment folded. Written in the same transaction as what it covers.
    "CREATE TABLE IF NOT EXISTS rm_tracking (name {key} PRIMARY KEY, position BIGINT NOT NULL)",
    # Figures for /metrics and the sequence counters of the fold.
    "CREATE TABLE IF NOT EXISTS rm_counts (metric {key} NOT NULL, label {key} NOT NULL, n BIGINT NOT NULL, "
    "PRIMARY KEY (metric, label)){wr}",
    # One row per segment: maps --as-of (recorded time) to a store position.
    # recorded_max_us, the latest recorded_us up to this segment, grows with
    # store_position: the first segment recorded after TS is one index seek.
    "CREATE TABLE IF NOT EXISTS rm_segments (store_position BIGINT PRIMARY KEY, journal {key} NOT NULL, "
    "first_position BIGINT NOT NULL, records BIGINT NOT NULL, recorded_us BIGINT NOT NULL, "
    "recorded_max_us BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS rm_segments_recorded ON rm_segments (recorded_max_us, store_position)",
    # Balances per (promoter, currency); carried_minor and paid_through_entry
    # describe its last payout (the payable it left, and that payout's entry in
    # the promoter's statement): what the next payout batch line starts from.
    "CREATE TABLE IF NOT EXISTS rm_balances (promoter_id {key} NOT NULL, currency {key} NOT NULL, "
    "pending_minor BIGINT NOT NULL, payable_minor BIGINT NOT NULL, paid_minor BIGINT NOT NULL, "
    "carried_minor BIGINT NOT NULL, paid_through_entry BIGINT NOT NULL, "
    "PRIMARY KEY (promoter_id, currency)){wr}",
    # The balances of one currency (?currency=) and the list of currencies (a loose index scan).
    "CREATE INDEX IF NOT EXISTS rm_balances_currency ON rm_balances (currency, promoter_id)",
    "CREATE TABLE IF NOT EXISTS rm_promoters (promoter_id {key} PRIMARY KEY, entries BIGINT NOT NULL){wr}",
    # Statements: one row per transfer, numbered 1, 2, 3… per promoter
    # (``entry``; the paging cursor) and across the store (``seq``), with the
    # running balances after it and its event time. Also the order → transfers
    # index of explanations and the entries of payout batches.
    "CREATE TABLE IF NOT EXISTS rm_statement (promoter_id {key} NOT NULL, entry BIGINT NOT NULL, "
    "seq BIGINT NOT NULL, store_position BIGINT NOT NULL, journal {key} NOT NULL, position BIGINT NOT NULL, "
    "kind TEXT NOT NULL, currency {key} NOT NULL, amount_minor BIGINT NOT NULL, debit TEXT NOT NULL, "
    "credit TEXT NOT NULL, order_id {key}, level BIGINT, rules_version BIGINT, cause TEXT NOT NULL, "
    "pending_minor BIGINT NOT NULL, payable_minor BIGINT NOT NULL, paid_minor BIGINT NOT NULL, event_us BIGINT, "
    "group_id {key}, PRIMARY KEY (promoter_id, entry)){wr}",
    "CREATE INDEX IF NOT EXISTS rm_statement_order ON rm_statement (journal, order_id, seq) WHERE order_id IS NOT NULL",
    # A promoter's entries of one currency: the chart's points, one seek each.
    "CREATE INDEX IF NOT EXISTS rm_statement_currency ON rm_statement (promoter_id, currency, entry)",
    # The balance history, position-stamped: a key's balances after each
    # segment that moved them. Balances as of a past store position are, per
    # key, its last row at or before it (time travel).
    "CREATE TABLE IF NOT EXISTS rm_balance_history (promoter_id {key} NOT NULL, currency {key} NOT NULL, "
    "store_position BIGINT NOT NULL, pending_minor BIGINT NOT NULL, payable_minor BIGINT NOT NULL, "
    "paid_minor BIGINT NOT NULL, PRIMARY KEY (promoter_id, currency, store_position)){wr}",
    # Orders: where the order event is (its raw bytes, for explanations), its
    # instant (statements' event time, the merchant statement's period) and
    # what its merchant owes (SPEC §13). merchant_id and currency are known
    # from its first commission transfer.
    "CREATE TABLE IF NOT EXISTS rm_orders (journal {key} NOT NULL, order_id {key} NOT NULL, store_position BIGINT, "
    "position BIGINT, occurred_us BIGINT, merchant_id {key}, currency {key}, accrued_minor BIGINT NOT NULL, "
    "reversed_minor BIGINT NOT NULL, settled BIGINT NOT NULL, level1_id {key}, PRIMARY KEY (journal, order_id)){wr}",
    # The merchant statement's pages, and its totals from the index alone (covering).
    "CREATE INDEX IF NOT EXISTS rm_orders_merchant ON rm_orders (merchant_id, occurred_us, order_id, journal, "
    "currency, accrued_minor, reversed_minor) WHERE merchant_id IS NOT NULL",
    # Dead letters, numbered 1, 2, 3… (the paging cursor), raw bytes exact.
    "CREATE TABLE IF NOT EXISTS rm_dead_letters (n BIGINT PRIMARY KEY, store_position BIGINT NOT NULL, "
    "journal {key} NOT NULL, position BIGINT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL, "
    "source TEXT NOT NULL, raw {blob} NOT NULL, event_id TEXT, order_id {key})",
    "CREATE INDEX IF NOT EXISTS rm_dead_letters_order ON rm_dead_letters (journal, order_id) WHERE order_id IS NOT NULL",
    # Recorded payouts and their batch lines: a line pays the promoter's
    # entries in (after_entry, through_entry] of its currency that touch payable.
    "CREATE TABLE IF NOT EXISTS rm_payouts (journal {key} NOT NULL, position BIGINT NOT NULL, "
    "store_position BIGINT NOT NULL, as_of TEXT NOT NULL, as_of_us BIGINT NOT NULL, lines BIGINT NOT NULL, "
    "PRIMARY KEY (journal, position)){wr}",
    "CREATE TABLE IF NOT EXISTS rm_payout_lines (journal {key} NOT NULL, position BIGINT NOT NULL, "
    "line BIGINT NOT NULL, promoter_id {key} NOT NULL, currency {key} NOT NULL, amount_minor BIGINT NOT NULL, "
    "carried_over_minor BIGINT NOT NULL, after_entry BIGINT NOT NULL, through_entry BIGINT NOT NULL, "
    "PRIMARY KEY (journal, position, line)){wr}",
)
DROP_ORDER = ("rm_payout_lines", "rm_payouts", "rm_dead_letters", "rm_orders", "rm_balance_history", "rm_statement",
              "rm_promoters", "rm_balances", "rm_segments", "rm_counts", "rm_tracking")

# PostgreSQL text cannot hold NUL, which wire ids may contain: an order-
# preserving, prefix-free escape (NUL → \x01\x01, \x01 → \x01\x02) for text
# going in, undone for text coming out. Strings without either are untouched.
_ESCAPE = {0: "\x01\x01", 1: "\x01\x02"}
_UNESCAPE = re.compile("\x01([\x01\x02])")


def _pg_in(value: Any) -> Any:
    if isinstance(value, str) and ("\x00" in value or "\x01" in value):
        return value.translate(_ESCAPE)
    return value


def _pg_out(value: Any) -> Any:
    if isinstance(value, str) and "\x01" in value:
        return _UNESCAPE.sub(lambda m: "\x00" if m.group(1) == "\x01" else "\x01", value)
    if isinstance(value, memoryview):
        return bytes(value)
    return value


class Cursor:
    """A DB-API cursor that takes ``?`` placeholders on both engines."""

    def __init__(self, raw: Any, postgres: bool) -> None:
        self.raw = raw
        self.postgres = postgres

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> "Cursor":
        if self.postgres:
            params = [_pg_in(p) for p in params]
        self.raw.execute(self._sql(sql), params)
        return self

    def insert(self, table: str, columns: str, rows: Sequence[Sequence[Any]], conflict: str = "") -> None:
        """``INSERT INTO table (columns) VALUES (…) conflict`` for every row:
        one prepared statement run per row on SQLite (``executemany`` is
        fast there); on PostgreSQL, where a statement per row costs a round
        trip, ``COPY`` — straight into the table, or with a ``conflict``
        clause into a temporary table inserted from."""
        if not rows:
            return
        if not self.postgres:
            marks = ",".join("?" * (columns.count(",") + 1))
            self.raw.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks}){conflict}", rows)
            return
        target = f"{table}_incoming" if conflict else table
        if conflict:
            self.raw.execute(f"CREATE TEMP TABLE IF NOT EXISTS {target} AS SELECT {columns} FROM {table} WITH NO DATA")
        with self.raw.copy(f"COPY {target} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([_pg_in(v) for v in row])
        if conflict:
            self.raw.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {target}{conflict}")
            self.raw.execute(f"TRUNCATE {target}")

    def fetchall(self) -> list[tuple]:
        rows = self.raw.fetchall()
        if self.postgres:
            return [tuple(_pg_out(v) for v in row) for row in rows]
        return rows

    def fetchone(self) -> tuple | None:
        row = self.raw.fetchone()
        if row is not None and self.postgres:
            return tuple(_pg_out(v) for v in row)
        return row

    @property
    def rowcount(self) -> int:
        return self.raw.rowcount


class Database:
    """The read models' database of one store. ``read()`` and ``write()`` give
    a Cursor; ``write()`` is one transaction (SQLite: ``BEGIN IMMEDIATE``, so
    writers queue on the busy timeout instead of failing on a stale snapshot)."""

    def __init__(self, store: Store) -> None:
        self.url = store.url
        scheme = urlsplit(store.url).scheme
        self.postgres = scheme in ("postgresql", "postgres")
        self._memory: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self._local = threading.local()
        if scheme == "memory":
            self._memory = self._sqlite(":memory:")
        elif self.postgres:
            self._datastore = store.recorder.datastore  # type: ignore[attr-defined]
        else:
            self._path = store.recorder.datastore.pool.db_name  # type: ignore[attr-defined]
        self._ensure_schema()

    # ------------------------------------------------------------ connections
    @staticmethod
    def _sqlite(path: str) -> sqlite3.Connection:
        conn = sqlite3.connect(path, uri=path != ":memory:", check_same_thread=False, isolation_level=None,
                               timeout=SQLITE_TIMEOUT_S, cached_statements=64)
        # Derived data: a power cut may lose the last folds, which the next
        # catch-up redoes (the tracking row is in the same transaction).
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        return conn

    def _thread_connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._sqlite(self._path)
        return conn

    @contextlib.contextmanager
    def _session(self, write: bool) -> Iterator[Cursor]:
        if self.postgres:
            from psycopg.rows import tuple_row

            with self._datastore.get_connection() as conn, conn.transaction():
                yield Cursor(conn.cursor(row_factory=tuple_row), True)
            return
        if self._memory is not None:
            with self._lock:
                yield from _sqlite_transaction(self._memory, write)
            return
        yield from _sqlite_transaction(self._thread_connection(), write)

    @contextlib.contextmanager
    def read(self) -> Iterator[Cursor]:
        with self._errors(), self._session(False) as cursor:
            yield cursor

    @contextlib.contextmanager
    def write(self) -> Iterator[Cursor]:
        with self._errors(), self._session(True) as cursor:
            yield cursor

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (sqlite3.Error, PersistenceError) as exc:
            raise StoreError(f"read models in {redact(self.url)}: {one_line(exc)}") from None
        except Exception as exc:  # psycopg errors outside the datastore's wrapping
            if type(exc).__module__.startswith("psycopg"):
                raise StoreError(f"read models in {redact(self.url)}: {one_line(exc)}") from None
            raise

    # ----------------------------------------------------------------- schema
    def _ensure_schema(self) -> None:
        exists = ("SELECT to_regclass('rm_tracking') IS NOT NULL" if self.postgres
                  else "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'rm_tracking')")
        with self.read() as c:
            names: set[str] = set()
            if c.execute(exists).fetchone()[0]:  # type: ignore[index]
                names = {row[0] for row in c.execute("SELECT name FROM rm_tracking").fetchall()}
        if PROJECTOR in names:
            return
        with self.write() as c:
            if self.postgres:
                c.execute("SELECT pg_advisory_xact_lock(?)", (SCHEMA_LOCK_ID,))
            if names:  # an older schema: the tables are derived data, rebuild them
                for table in DROP_ORDER:
                    c.execute(f"DROP TABLE IF EXISTS {table}")
            for ddl in TABLES:
                c.execute(ddl.format(
                    key='TEXT COLLATE "C"' if self.postgres else "TEXT",
                    blob="BYTEA" if self.postgres else "BLOB",
                    wr="" if self.postgres else " WITHOUT ROWID",
                ))
            c.execute("INSERT INTO rm_tracking (name, position) VALUES (?, 0) ON CONFLICT (name) DO NOTHING",
                      (PROJECTOR,))


def _sqlite_transaction(conn: sqlite3.Connection, write: bool) -> Iterator[Cursor]:
    cursor = conn.cursor()
    if write:
        cursor.execute("BEGIN IMMEDIATE")
    try:
        yield Cursor(cursor, False)
    except BaseException:
        if conn.in_transaction:
            conn.rollback()
        raise
    else:
        if conn.in_transaction:
            conn.commit()
    finally:
        cursor.close()


_databases: "weakref.WeakKeyDictionary[Store, Database]" = weakref.WeakKeyDictionary()
_databases_lock = threading.Lock()


def database(store: Store) -> Database:
    """The read models' database of ``store`` (one per Store object)."""
    with _databases_lock:
        db = _databases.get(store)
        if db is None:
            db = _databases[store] = Database(store)
        return db
