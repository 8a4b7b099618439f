"""Journals on an ``eventsourcing`` event store, chosen by URL.

``memory://`` (POPO), ``sqlite:///path`` (the durable default) and
``postgresql://user:pass@host:port/db`` all sit behind the same eventsourcing
ProcessRecorder interface. A store holds several *journals* (one per source of
events: ``main`` for files, one per Kafka partition, ``treasury`` for payouts
and adjustments). A journal is one aggregate sequence: segment n is stored at
originator_version n, so the primary key (originator_id, version) is also the
optimistic-concurrency check between writers. Kafka positions are eventsourcing
``Tracking`` rows written in the same transaction as the segment they produced.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from dataclasses import dataclass
from typing import Iterator, NamedTuple, Sequence
from urllib.parse import unquote, urlsplit

from eventsourcing.persistence import (
    InfrastructureFactory,
    IntegrityError,
    PersistenceError,
    ProcessRecorder,
    Tracking,
)

from ledger.invariants import require
from ledger.records import SEGMENT_TOPIC
from ledger.recorders import MultiTrackingPOPOProcessRecorder
from ledger.statelog import Folder, fold_cursor, sorted_delta
from ledger.statestore import Op, PostgresState, SQLiteState, StateReader, postgres_write, sqlite_write

READ_PAGE = 20  # segments per read (each holds a batch of up to 5,000 records): bounds memory
TREASURY = "treasury"  # the journal of payouts and adjustments
REGISTRY_ID = "registry:journals"
REGISTRY_TOPIC = "commission_ledger.JournalRegistered"


class StoreError(RuntimeError):
    """The store cannot be opened or used; the message is one line for humans."""


class ConcurrentWriteError(StoreError):
    """Another writer appended to the journal (or advanced a position) first."""


@dataclass(frozen=True)
class StoredRecord:
    version: int
    topic: str
    state: bytes


class Row(NamedTuple):
    """Duck-typed eventsourcing StoredEvent: the recorders only read these four
    attributes, and a tuple is cheaper to build than the frozen dataclass."""

    originator_id: str
    originator_version: int
    topic: str
    state: bytes


def _environment(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    common = {"ORIGINATOR_ID_TYPE": "text", "CREATE_TABLE": "y"}
    if parts.scheme == "memory":
        return {"PERSISTENCE_MODULE": "eventsourcing.popo", **common}
    if parts.scheme == "sqlite":
        path = unquote(url[len("sqlite:///"):]) if url.startswith("sqlite:///") else ""
        if not path:
            raise StoreError(f"bad store URL {url!r}: expected sqlite:///path/to/ledger.db")
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": path,
            "SQLITE_LOCK_TIMEOUT": "30",
            "PROCESS_RECORDER_TOPIC": "ledger.recorders:BatchSQLiteProcessRecorder",
            **common,
        }
    if parts.scheme in ("postgresql", "postgres"):
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": unquote(parts.path.lstrip("/")) or "postgres",
            "POSTGRES_HOST": parts.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            "POSTGRES_CONNECT_TIMEOUT": "10",
            # A ledger process needs few connections (one writer, a reader or
            # two for state and the log; the service's threads share them):
            # a small pool keeps many processes within the server's limit.
            "POSTGRES_POOL_SIZE": "3",
            "POSTGRES_MAX_OVERFLOW": "6",
            "PROCESS_RECORDER_TOPIC": "ledger.recorders_postgres:MultiTrackingPostgresProcessRecorder",
            **common,
        }
    raise StoreError(f"bad store URL {url!r}: expected memory://, sqlite:///PATH or postgresql://…")


SCHEMA_LOCK_ID = 0x6C6564676572  # pg_advisory_lock key: "ledger"


@contextlib.contextmanager
def _schema_lock(env: dict[str, str], url: str):
    """Serialise schema creation between processes opening one PostgreSQL
    database at the same moment (CREATE TABLE IF NOT EXISTS and eventsourcing's
    tracking migration both race otherwise). No-op for SQLite and memory."""
    if env["PERSISTENCE_MODULE"] != "eventsourcing.postgres":
        yield
        return
    import psycopg

    try:
        conn = psycopg.connect(
            dbname=env["POSTGRES_DBNAME"], host=env["POSTGRES_HOST"], port=env["POSTGRES_PORT"],
            user=env["POSTGRES_USER"], password=env["POSTGRES_PASSWORD"] or None,
            connect_timeout=int(env["POSTGRES_CONNECT_TIMEOUT"]), autocommit=True,
        )
    except psycopg.Error as exc:
        raise StoreError(f"cannot open store {redact(url)}: {one_line(exc)}") from None
    try:
        conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK_ID,))
        yield
    finally:
        try:
            conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK_ID,))
        finally:
            conn.close()


class Store:
    """One event store: its journals, their registry and the notification log."""

    def __init__(self, url: str) -> None:
        self.url = url
        env = _environment(url)
        with _schema_lock(env, url):
            self._open(env)

    def _open(self, env: dict[str, str]) -> None:
        url = self.url
        attempts = 10
        for attempt in range(attempts):
            started = time.monotonic()
            try:
                self.factory = InfrastructureFactory.construct(env)
                if env["PERSISTENCE_MODULE"] == "eventsourcing.popo":
                    recorder = MultiTrackingPOPOProcessRecorder()
                    self.recorder: ProcessRecorder = recorder
                    self.state: StateReader = recorder.state
                    self.folder: Folder | None = None
                else:
                    self.recorder = self.factory.process_recorder()
                    sqlite = env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite"
                    datastore = self.recorder.datastore  # type: ignore[attr-defined]
                    self.state = SQLiteState(datastore) if sqlite else PostgresState(datastore)
                    self.folder = Folder(env["SQLITE_DBNAME"]) if sqlite else None
                return
            except (PersistenceError, OSError, sqlite3.Error) as exc:
                # Processes creating the schema at the same moment race in
                # PostgreSQL's catalog, or in SQLite, whose deadlock avoidance
                # answers "database is locked" at once, without the busy timeout
                # (a lock really held fails only after the 30 s timeout: no retry).
                racing = isinstance(exc, IntegrityError) or any(
                    sign in str(exc) for sign in ("concurrently", "already exists", "pg_type_typname_nsp_index")
                ) or ("database is locked" in str(exc) and time.monotonic() - started < 1.0)
                if not racing or attempt == attempts - 1:
                    raise StoreError(f"cannot open store {redact(url)}: {one_line(exc)}") from None
                time.sleep(0.1 * (attempt + 1))

    def close(self) -> None:
        if self.folder is not None:
            self.folder.close()
        self.factory.close()

    # --------------------------------------------------------------- registry
    def journals(self) -> list[str]:
        """Names of every journal written to, in order of first use."""
        try:
            rows = self.recorder.select_events(REGISTRY_ID)
        except PersistenceError as exc:
            raise StoreError(f"cannot read store {redact(self.url)}: {one_line(exc)}") from None
        return [row.state.decode() for row in rows]

    def register(self, name: str) -> int:
        """Record that journal ``name`` exists; return its number (1, 2, … in
        order of first use: the key of its rows in the state table)."""
        for _ in range(10):
            names = self.journals()
            if name in names:
                return names.index(name) + 1
            try:
                self.recorder.insert_events([Row(REGISTRY_ID, len(names) + 1, REGISTRY_TOPIC, name.encode())])  # type: ignore[list-item]
                return len(names) + 1
            except IntegrityError:
                continue
        raise StoreError(f"cannot register journal {name!r}: too much contention")

    # --------------------------------------------------------------- reading
    def notifications(self, after: int = 0, page: int = READ_PAGE) -> Iterator[tuple[int, str, int, bytes]]:
        """Every segment of every journal in commit order: (id, journal, version, state)."""
        start = after
        while True:
            try:
                batch = self.recorder.select_notifications(start, page, topics=[SEGMENT_TOPIC], inclusive_of_start=False)
            except PersistenceError as exc:
                raise StoreError(f"cannot read store {redact(self.url)}: {one_line(exc)}") from None
            for n in batch:
                yield n.id, str(n.originator_id).removeprefix("journal:"), n.originator_version, n.state
            if len(batch) < page:
                return
            start = batch[-1].id

    def any_segment_after(self, position: int) -> bool:
        """Whether a segment was committed after store position ``position`` (one indexed read)."""
        try:
            return bool(self.recorder.select_notifications(position, 1, topics=[SEGMENT_TOPIC], inclusive_of_start=False))
        except PersistenceError as exc:
            raise StoreError(f"cannot read store {redact(self.url)}: {one_line(exc)}") from None

    def rewrite_segment(self, journal_id: str, version: int, state: bytes, number: int, ops: Sequence[Op]) -> None:
        """Replace a stored segment's bytes and write state, in one transaction
        (``migrate`` only: journals are otherwise append-only)."""
        recorder = self.recorder
        if isinstance(recorder, MultiTrackingPOPOProcessRecorder):
            raise StoreError("memory:// stores need no migration")
        sqlite = isinstance(self.state, SQLiteState)
        mark = "?" if sqlite else "%s"
        table = getattr(recorder, "events_table_name", "stored_events")
        with recorder.datastore.transaction(commit=True) as c:  # type: ignore[attr-defined]
            c.execute(f"UPDATE {table} SET state = {mark} WHERE originator_id = {mark} AND originator_version = {mark}",
                      (state, journal_id, version))
            if sqlite:
                fold_cursor(c, number)  # direct writes go on top of everything logged
            (sqlite_write if sqlite else postgres_write)(c, number, ops)

    def clear_state(self, number: int) -> None:
        """Delete one journal's state rows (``migrate`` starting over)."""
        recorder = self.recorder
        if isinstance(recorder, MultiTrackingPOPOProcessRecorder):
            return
        mark = "?" if isinstance(self.state, SQLiteState) else "%s"
        with recorder.datastore.transaction(commit=True) as c:  # type: ignore[attr-defined]
            c.execute(f"DELETE FROM ledger_state WHERE journal = {mark}", (number,))
            if mark == "?":
                c.execute("DELETE FROM ledger_state_log WHERE journal = ?", (number,))

    def replace_state(self, number: int, source: StateReader, source_journal: int, page: int = 5_000) -> None:
        """Replace one journal's state (table and changelog) by ``source``'s
        rows of ``source_journal``, in one transaction (``migrate`` only)."""
        recorder = self.recorder
        if isinstance(recorder, MultiTrackingPOPOProcessRecorder):
            raise StoreError("memory:// stores need no migration")
        sqlite = isinstance(self.state, SQLiteState)
        mark = "?" if sqlite else "%s"
        with recorder.datastore.transaction(commit=True) as c:  # type: ignore[attr-defined]
            c.execute(f"DELETE FROM ledger_state WHERE journal = {mark}", (number,))
            if sqlite:
                c.execute("DELETE FROM ledger_state_log WHERE journal = ?", (number,))
            lo = b""
            while True:
                rows = source.scan(source_journal, lo, b"\xff" * 32, page)
                if rows:
                    (sqlite_write if sqlite else postgres_write)(c, number, rows)
                if len(rows) < page:
                    break
                lo = rows[-1][0] + b"\x00"

    def exists(self, rows: Sequence[Row]) -> bool:
        """Does any of these (stream, version) rows exist already?"""
        try:
            return any(self.recorder.select_events(row.originator_id, gt=row.originator_version - 1,
                                                   lte=row.originator_version) for row in rows)
        except PersistenceError as exc:
            raise StoreError(f"cannot read store {redact(self.url)}: {one_line(exc)}") from None

    def trackings(self) -> dict[str, int]:
        """Every tracking position recorded: name → next position."""
        recorder = self.recorder
        if isinstance(recorder, MultiTrackingPOPOProcessRecorder):
            return {k: v for k, v in recorder._max_tracking_ids.items() if v is not None}  # noqa: SLF001 - memory only
        table = getattr(recorder, "tracking_table_name", "tracking")  # SQLite: "tracking"
        try:
            with recorder.datastore.transaction(commit=False) as c:  # type: ignore[attr-defined]
                c.execute(f"SELECT application_name, notification_id FROM {table}")
                rows = c.fetchall()
        except PersistenceError as exc:
            raise StoreError(f"cannot read store {redact(self.url)}: {one_line(exc)}") from None
        return {(r["application_name"] if isinstance(r, dict) else r[0]): (r["notification_id"] if isinstance(r, dict) else r[1])
                for r in rows}

    def position(self, name: str) -> int | None:
        try:
            return self.recorder.max_tracking_id(name)
        except PersistenceError as exc:
            raise StoreError(f"cannot read store {redact(self.url)}: {one_line(exc)}") from None


class JournalStore:
    """Append and read the segments of one journal."""

    def __init__(self, store: "Store | str", journal: str = "main") -> None:
        self.store = store if isinstance(store, Store) else Store(store)
        self.url = self.store.url
        self.name = journal
        self.journal_id = f"journal:{journal}"
        self.recorder = self.store.recorder
        self._number: int | None = None

    @property
    def number(self) -> int:
        """The journal's number in the registry (registered on first use)."""
        if self._number is None:
            self._number = self.store.register(self.name)
        return self._number

    @property
    def state(self) -> StateReader:
        return self.store.state

    def last(self, n: int = 1) -> list[StoredRecord]:
        """The newest ``n`` segments, newest first (fewer for a short journal)."""
        try:
            rows = self.recorder.select_events(self.journal_id, desc=True, limit=n)
        except PersistenceError as exc:
            raise StoreError(f"cannot read store {redact(self.url)}: {one_line(exc)}") from None
        return [StoredRecord(row.originator_version, row.topic, row.state) for row in rows]

    def read(self, after_version: int = 0, page: int = READ_PAGE) -> Iterator[StoredRecord]:
        """Segments with version > after_version, in order, ``page`` at a time."""
        require(page > 0, "page must be positive")
        gt = after_version
        while True:
            try:
                batch = self.recorder.select_events(self.journal_id, gt=gt, limit=page)
            except PersistenceError as exc:
                raise StoreError(f"cannot read store {redact(self.url)}: {one_line(exc)}") from None
            for stored in batch:
                yield StoredRecord(stored.originator_version, stored.topic, stored.state)
            if len(batch) < page:
                return
            gt = batch[-1].originator_version

    def segment(self, version: int) -> StoredRecord:
        """The one segment stored at ``version``."""
        for stored in self.read(after_version=version - 1, page=1):
            require(stored.version == version, f"journal {self.name!r}: asked for segment {version}, got {stored.version}")
            return stored
        raise StoreError(f"journal {self.name!r} has no segment {version}")

    def fold(self) -> None:
        """Fold this journal's state changelog now (the end of a command's writes; SQLite only)."""
        if self.store.folder is not None:
            self.store.folder.finish(self.number)

    def append(self, segments: Sequence[tuple[str, bytes]], after_version: int, trackings: Sequence[Tracking] = (),
               state: Sequence[Op] = (), also: Sequence[Row] = ()) -> int:
        """Append segments as versions after_version+1…, with ``trackings``,
        the journal's ``state`` writes and ``also`` rows of other streams (an
        idempotency key's record) in the same transaction; return the last
        version. Raises ConcurrentWriteError when another writer got there
        first (or one of ``also`` exists already)."""
        rows = [
            Row(self.journal_id, after_version + i, topic, data)
            for i, (topic, data) in enumerate(segments, start=1)
        ]
        if not rows:
            return after_version
        number = self.number
        delta = sorted_delta(state)  # the changelog's row (SQLite), and what this process's reader adopts
        try:
            self.recorder.insert_events([*rows, *also], trackings=list(trackings),  # type: ignore[arg-type]
                                        state=(number, delta, after_version + len(rows)) if state else None)
        except IntegrityError as exc:
            raise ConcurrentWriteError(
                f"journal {self.name} changed since version {after_version}: {one_line(exc)}"
            ) from None
        except PersistenceError as exc:
            raise StoreError(f"cannot write store {redact(self.url)}: {one_line(exc)}") from None
        if state and self.store.folder is not None:
            self.store.state.adopt(number, after_version + len(rows), delta)  # type: ignore[attr-defined]
            self.store.folder.committed(number)
        return after_version + len(rows)


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
