"""The journal on an ``eventsourcing`` event store, chosen by URL.

``memory://`` (POPO), ``sqlite:///path`` (the durable default) and
``postgresql://user:pass@host:port/db`` all sit behind the same eventsourcing
ProcessRecorder interface. The journal is one aggregate sequence: record n is
stored at originator_version n, so the primary key (originator_id, version) is
also the optimistic-concurrency check between writers.
"""

from __future__ import annotations

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

READ_PAGE = 5_000


class StoreError(RuntimeError):
    """The store cannot be opened or used; the message is one line for humans."""


class ConcurrentWriteError(StoreError):
    """Another writer appended to the journal first."""


class _Row(NamedTuple):
    """Duck-typed eventsourcing StoredEvent: the recorders only read these four
    attributes, and a tuple is several times cheaper to build than the frozen
    dataclass on the hot path."""

    originator_id: str
    originator_version: int
    topic: str
    state: bytes


@dataclass(frozen=True)
class StoredRecord:
    version: int
    topic: str
    state: bytes


def _environment(url: str) -> dict[str, str]:
    parts = urlsplit(url)
    common = {"ORIGINATOR_ID_TYPE": "text", "CREATE_TABLE": "y"}
    if parts.scheme == "memory":
        return {"PERSISTENCE_MODULE": "eventsourcing.popo", **common}
    if parts.scheme == "sqlite":
        path = unquote(url[len("sqlite:///") :]) if url.startswith("sqlite:///") else ""
        if not path:
            raise StoreError(f"bad store URL {url!r}: expected sqlite:///path/to/ledger.db")
        return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path, "SQLITE_LOCK_TIMEOUT": "30",
                "PROCESS_RECORDER_TOPIC": "ledger.sqlite_recorder:BatchSQLiteProcessRecorder", **common}
    if parts.scheme in ("postgresql", "postgres"):
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": unquote(parts.path.lstrip("/")) or "postgres",
            "POSTGRES_HOST": parts.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            "POSTGRES_CONNECT_TIMEOUT": "10",
            **common,
        }
    raise StoreError(f"bad store URL {url!r}: expected memory://, sqlite:///PATH or postgresql://…")


class JournalStore:
    """Append and read journal records (bytes) in one eventsourcing store."""

    def __init__(self, url: str, journal: str = "main") -> None:
        self.url = url
        self.journal_id = f"journal:{journal}"
        try:
            self.factory = InfrastructureFactory.construct(_environment(url))
            self.recorder: ProcessRecorder = self.factory.process_recorder()
        except (PersistenceError, OSError) as exc:
            raise StoreError(f"cannot open store {redact(url)}: {one_line(exc)}") from None

    def close(self) -> None:
        self.factory.close()

    def read(self, after_version: int = 0, page: int = READ_PAGE) -> Iterator[StoredRecord]:
        """Records with version > after_version, in order, ``page`` at a time."""
        assert page > 0
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

    def append(self, records: Sequence[tuple[str, bytes]], after_version: int, tracking: Tracking | None = None) -> int:
        """Append records as versions after_version+1…; return the last version.

        Raises ConcurrentWriteError when another writer got there first.
        """
        stored = [
            _Row(self.journal_id, after_version + i, topic, state)
            for i, (topic, state) in enumerate(records, start=1)
        ]
        if not stored:
            return after_version
        try:
            self.recorder.insert_events(stored, tracking=tracking)  # type: ignore[arg-type]
        except IntegrityError as exc:
            raise ConcurrentWriteError(
                f"journal {self.journal_id} changed since version {after_version}: {one_line(exc)}"
            ) from None
        except PersistenceError as exc:
            raise StoreError(f"cannot write store {redact(self.url)}: {one_line(exc)}") from None
        return after_version + len(stored)

    def tracking_position(self, name: str) -> int | None:
        return self.recorder.max_tracking_id(name)


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url
