"""The ledger application: one journal, its engine, and the commands.

Opening a ledger costs the same whatever the journal's age: it reads the
journal's own state row and checks it against the newest stored segment (the
chain head); the engine then reads the state it needs from the state tables as
it goes. New work is applied in bounded batches, each written as one segment
together with the state it changed, in one transaction, with the journal
version as the optimistic-concurrency check. Re-executing the whole journal is
``ledger.replay``'s job (``audit replay``), not a write's.
"""

from __future__ import annotations

import gc
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, NamedTuple, Sequence

from eventsourcing.persistence import Tracking

from ledger.arguments import AsOf, validate_adjustment
from ledger.chain import ChainError, link
from ledger.config import Rules
from ledger.engine import Engine
from ledger.engine.tables import Flush, StateCache
from ledger.errors import IntegrityError, MigrationNeeded
from ledger.invariants import require
from ledger.limits import DEFAULT_LIMITS, Limits
from ledger.outcomes import IngestCounts, apply_record, guarded, raw_of, record_for, settled_record
from ledger.recent import RecentSegments
from ledger.records import (
    Adjusted,
    network_rebuilt,
    DeadLetter,
    Held,
    NetworkRebuilt,
    PaidOut,
    Record,
    Rejected,
    Released,
    SEGMENT_TOPIC,
    RulesAdopted,
    Segment,
    Settled,
    Source,
    decode_segment,
    encode_segment,
    frame,
    genesis,
    unframe,
)
from ledger.statestore import STATE_FORMAT
from ledger.store import ConcurrentWriteError, JournalStore, Row
from schemas.decode import decode_event

log = logging.getLogger("commission_ledger.ledger")

DEFAULT_BATCH_EVENTS = 5_000
MAX_WRITE_ATTEMPTS = 5
OPEN_ATTEMPTS = 5  # reads of (state row, chain head) that may straddle another writer's commit


def _settle_heap() -> None:
    """Move the long-lived, acyclic cached state out of the collector's reach:
    without this, every full collection re-traverses it. Cyclic garbage made
    since the last call is collected first (cheap: frozen objects are not
    traversed), or it would be frozen with the state and never freed."""
    gc.collect()
    gc.freeze()


Item = tuple[bytes, Source]


class Pending(NamedTuple):
    """A segment encoded and its state flushed, on its way to the store."""

    records: list[Record]
    stored: list[tuple[str, bytes]]
    after_version: int
    flush: Flush


class Ledger:
    """The embedding API for one journal; ``ledger.books.Books`` spans them.

    ``version`` counts stored segments (the optimistic-concurrency check);
    ``position`` counts records (what statements and explanations cite).
    """

    def __init__(self, store: JournalStore, *, limits: Limits = DEFAULT_LIMITS) -> None:
        self.store = store
        self.limits = limits
        # Records not (yet) readable from the store, for a repeated event id's
        # first occurrence: the batch being applied, the one being written.
        self._applying: tuple[int, list[Record]] | None = None
        self._writing: Pending | None = None
        self._recent = RecentSegments(store)  # a few stored segments read for repeats
        self._open()

    # -------------------------------------------------------------- opening
    def _open(self) -> None:
        """Read the journal's state row and check it against the chain head. O(1).

        The two are read in two queries: a writer committing in between makes
        them disagree for a moment, so a disagreement is read again before it
        counts as an integrity error."""
        for attempt in range(OPEN_ATTEMPTS):
            cache = StateCache(self.store.state, self.store.number, self.limits.cache_bytes)
            try:
                self._check_head(cache, self.store.last(2))
                break
            except (IntegrityError, MigrationNeeded):
                if attempt == OPEN_ATTEMPTS - 1:
                    raise
                time.sleep(0.01 * (attempt + 1))
        meta = cache.meta
        self.cache = cache
        self.engine = Engine(cache, self.limits, self._first_raw)
        self.version = meta.version
        self.position = meta.position

    def _check_head(self, cache: StateCache, newest: list) -> None:
        meta = cache.meta
        name = self.store.name
        if not newest:
            if meta.version:
                raise IntegrityError(f"journal {name}: the state tables reflect {meta.version} segments but the journal is empty")
            return
        last = newest[0]
        if unframe(last.state)[0] is None or not cache.meta_stored:
            raise MigrationNeeded(f"journal {name!r} was written by an older version: run `commission-ledger migrate`")
        if meta.state_format != STATE_FORMAT:
            raise MigrationNeeded(f"journal {name!r} has state tables in format {meta.state_format}, this version "
                                  f"reads format {STATE_FORMAT}: run `commission-ledger migrate`")
        prev = unframe(newest[1].state)[0] if len(newest) > 1 else genesis(name)
        try:
            carried = link(name, last.version, prev or b"", last.state)
        except ChainError as exc:
            raise IntegrityError(f"{exc}; no write until an audit (`commission-ledger audit replay`)") from None
        if last.version != meta.version or carried != meta.head_sha256:
            raise IntegrityError(f"journal {name} segment {last.version}: the state tables stand at segment "
                                 f"{meta.version} with another head: the journal changed without its state "
                                 "(run `commission-ledger audit replay`)")

    def _first_raw(self, version: int, index: int) -> bytes:
        """The raw bytes of the record at (segment ``version``, ``index``): a
        repeated event id's first occurrence (``ledger.engine.dedupe``)."""
        if self._applying is not None and self._applying[0] == version:
            records = self._applying[1]
        elif self._writing is not None and self._writing.after_version + 1 == version:
            records = self._writing.records
        else:
            records = self._recent.records(version)
        return raw_of(records[index])

    def reload(self) -> None:
        """Drop everything cached and open again from the store."""
        self._open()

    def catch_up(self) -> None:
        """Follow segments another writer (e.g. a ``settle`` command) appended:
        the cache is dropped and the state read again as needed. O(1)."""
        newest = self.store.last()
        if (newest[0].version if newest else 0) != self.version:
            self.reload()

    # -------------------------------------------------------------- writing
    def _seal(self, records: list[Record]) -> Pending:
        """Encode ``records`` as the next segment (chained to the head) and
        flush the state they changed, with the journal's row moved past them."""
        meta = self.cache.meta
        recorded_us = time.time_ns() // 1_000  # metadata only: see Segment.recorded_us
        payload = encode_segment(Segment(meta.position + 1, records, recorded_us))
        stored, chain = frame(meta.head_sha256 or genesis(self.store.name), payload)
        after = meta.version
        meta.version += 1
        meta.position += len(records)
        meta.head_sha256 = chain
        self.version, self.position = meta.version, meta.position
        return Pending(records, [(SEGMENT_TOPIC, stored)], after, self.cache.flush())

    def _write(self, pending: Pending, trackings: list[Tracking] | None = None, also: Sequence[Row] = ()) -> None:
        self.store.append(pending.stored, pending.after_version, trackings or (), pending.flush.ops, also)
        self.cache.committed(pending.flush)

    def _append(self, records: list[Record], also: Callable[[int, list[Record]], Sequence[Row]] | None = None) -> list[Record]:
        """Append records as one segment; if another writer got there first,
        reopen from the store and re-execute them (optimistic concurrency).
        ``also(first_position, records)`` gives rows written in the same transaction.
        Returns the records as finally written."""
        for attempt in range(MAX_WRITE_ATTEMPTS):
            if not records:
                return records
            first = self.position + 1
            pending = self._seal(records)
            rows = also(first, records) if also is not None else ()
            try:
                self._write(pending, also=rows)
                return records
            except ConcurrentWriteError:
                if attempt == MAX_WRITE_ATTEMPTS - 1 or (rows and self.store.store.exists(rows)):
                    self.reload()
                    raise
                self.reload()
                records = self._redo(records)
        raise ConcurrentWriteError(f"journal {self.store.name}: gave up after {MAX_WRITE_ATTEMPTS} write conflicts")

    def _redo(self, records: list[Record]) -> list[Record]:
        """Re-execute records (lost in a write race) on the reopened engine, as
        the next segment."""
        engine = self.engine
        version = self.cache.meta.version + 1
        redone: list[Record] = []
        self._applying = (version, redone)
        engine.begin_batch()
        try:
            for record in records:
                if isinstance(record, NetworkRebuilt):
                    continue  # the walk is re-run at the end
                engine.at = (version, len(redone))
                result = apply_record(engine, record)
                if not (isinstance(result, RulesAdopted) and result.version == -1):
                    redone.append(result)
            walked, transfers = engine.end_batch()
        finally:
            self._applying = None
        return redone + [network_rebuilt(transfers)] if walked else redone

    def adopt_rules(self, rules: Rules) -> int:
        """Put ``rules`` in force (recorded when they differ); return the version."""
        version = self.engine.adopt_rules(rules)
        if version is not None:
            self._append([RulesAdopted(version, rules.digest(), rules.to_toml())])
        return self.engine.rules_version

    def ensure_rules(self) -> None:
        """Put the built-in default rules in force on a ledger that has none."""
        if not self.engine.rules:
            self.adopt_rules(Rules())

    def _apply_batch(self, items: list[Item], counts: IngestCounts, letters: list[DeadLetter] | None = None) -> list[Record]:
        """Decode a batch, load the state it touches, apply it: its records."""
        decoded = [decode_event(raw) for raw, _ in items]
        engine = self.engine
        engine.prefetch(decoded)
        engine.begin_batch()
        records: list[Record] = []
        version = self.cache.meta.version + 1  # the segment these records will be
        self._applying = (version, records)
        for (raw, source), event in zip(items, decoded):
            engine.at = (version, len(records))
            try:
                outcome = engine.apply_decoded(event, raw, source)
            except Exception as exc:  # noqa: BLE001 - the last-resort guard: see guarded()
                outcome = guarded(exc, raw, source)
            counts.add(outcome)
            records.append(record_for(outcome, raw, source, event))
            if letters is not None:
                if outcome.dead_letter is not None:
                    letters.append(outcome.dead_letter)
                letters.extend(outcome.released)
        walked, transfers = engine.end_batch()
        self._applying = None
        if walked:
            records.append(network_rebuilt(transfers))
        return records

    def ingest(
        self,
        items: Iterable[Item],
        *,
        batch_events: int = DEFAULT_BATCH_EVENTS,
        progress: Callable[[IngestCounts], None] | None = None,
    ) -> IngestCounts:
        """Apply wire events; one store transaction per ``batch_events``.

        Batch n is written on a background thread while batch n+1 is applied
        (SQLite and psycopg release the GIL while they write); at most one batch
        is in flight, so memory stays bounded. The cyclic garbage collector is
        paused meanwhile: the ledger's state is acyclic.
        """
        require(batch_events > 0, "batch_events must be positive")
        self.ensure_rules()
        counts = IngestCounts()
        gc_was_enabled = gc.isenabled()
        gc.disable()
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-writer")
        inflight: tuple[Future, Pending] | None = None
        try:
            for chunk in _chunks(items, batch_events):
                records = self._apply_batch(chunk, counts)
                inflight = self._write_behind(writer, inflight, chunk, records)
                _settle_heap()
                if progress is not None:
                    progress(counts)
            self._finish(inflight, [], [])
        finally:
            writer.shutdown(wait=True)
            if gc_was_enabled:
                gc.enable()
        self.store.fold()  # what is left of the changelog, so that the next reader need not decode it
        if progress is not None:
            progress(counts)
        return counts

    def _write_behind(self, writer: ThreadPoolExecutor, inflight: tuple[Future, Pending] | None,
                      items: list[Item], records: list[Record]) -> tuple[Future, Pending] | None:
        """Wait for the batch in flight, then start writing ``records``."""
        if self._finish(inflight, items, records):
            return None  # written synchronously after a conflict
        pending = self._seal(records)
        self._writing = pending  # its records are not readable from the store until it commits
        return writer.submit(self.store.append, pending.stored, pending.after_version, (), pending.flush.ops), pending

    def _finish(self, inflight: tuple[Future, Pending] | None, following: list[Item], applied: list[Record]) -> bool:
        """Wait for a write. On a conflict, reopen from the store and apply the
        lost batch and ``following`` (already applied in memory as ``applied``)
        again, synchronously. Returns True when ``following`` was written that way."""
        if inflight is None:
            return False
        future, pending = inflight
        try:
            future.result()
        except ConcurrentWriteError:
            self._writing = None
            self.reload()
            self._append(self._redo(pending.records + applied))
            return True
        except BaseException:
            self._writing = None
            self.reload()  # the cache holds what was not written
            raise
        self._writing = None
        self.cache.committed(pending.flush)
        return False

    # ------------------------------------------------- stream processors' API
    def apply(self, items: Iterable[Item]) -> tuple[list[Record], IngestCounts, list[DeadLetter]]:
        """Apply wire events, without writing: the records to commit, the
        counts, and the dead letters they produced (for a DLQ topic)."""
        self.ensure_rules()
        counts = IngestCounts()
        letters: list[DeadLetter] = []
        records = self._apply_batch(list(items), counts, letters)
        return records, counts, letters

    def commit(self, records: list[Record], trackings: list[Tracking]) -> None:
        """Write ``records`` (already applied by ``apply``) as one segment with
        the source positions they advance and the state they changed, in one
        transaction. On ConcurrentWriteError the cache is ahead of the store:
        the caller reopens the ledger and resumes from the stored positions."""
        if not records:
            return
        pending = self._seal(records)
        try:
            self._write(pending, trackings)
        except BaseException:
            self.reload()
            raise
        _settle_heap()

    def settle(self, as_of: AsOf | str, limit_orders: int = 0) -> Settled:
        """Settle this journal's due orders (SPEC §7), the first ``limit_orders``
        of them when > 0, as one record; ``as_of`` as text or parsed."""
        if isinstance(as_of, str):
            as_of = AsOf.parse(as_of)
        self.ensure_rules()
        self.engine.at = (self.cache.meta.version + 1, 0)
        record = settled_record(self.engine, as_of.text, as_of.instant_us, limit_orders)
        return self._append([record])[0]  # type: ignore[return-value]

    def settle_all(self, as_of: AsOf) -> Iterator[Settled]:
        """Settle every due order in records of at most ``settle_batch_orders``
        orders, each its own transaction, yielded as written: memory follows
        the batch, not the backlog. A crash between two leaves the first
        settled; running the command again settles the rest."""
        batch = self.limits.settle_batch_orders
        while True:
            record = self.settle(as_of, batch)
            # Fold each batch's delta at once: nothing runs beside a settle for
            # the folder to overlap, and the next batch's reads then find the
            # table, not a decoded delta of 20,000 orders.
            self.store.fold()
            yield record
            if len(record.order_ids) + len(record.review) < batch or not self.engine.has_due(as_of.instant_us):
                return

    def record_adjustment(self, promoter_id: str, currency: str, amount_minor: int, reason: str, actor: str,
                          also: Callable[[int, list[Record]], Sequence[Row]] | None = None) -> tuple[int, Adjusted]:
        """Append a manual adjustment (the treasury journal's job: see ledger.books);
        return its position and record."""
        validate_adjustment(promoter_id, currency, amount_minor, reason)
        self.ensure_rules()
        transfers = self.engine.adjust(promoter_id, currency, amount_minor)
        record = Adjusted(promoter_id, currency, amount_minor, reason, actor, transfers)
        written = self._append([record], also)
        return self.position, written[0]  # type: ignore[return-value]

    def record_payout(self, as_of: AsOf, payables: dict[tuple[str, str], int], *, expected_version: int,
                      balances_at: int, also: Callable[[int, list[Record]], Sequence[Row]] | None = None) -> tuple[int, PaidOut]:
        """Append one payout of ``payables`` (computed by the caller from every
        journal up to store position ``balances_at``, while this journal was at
        ``expected_version``); if this journal moved since, raise
        ConcurrentWriteError: never pay from stale balances."""
        require(bool(self.engine.rules), "call ensure_rules() first")
        if self.version != expected_version:
            raise ConcurrentWriteError(f"journal {self.store.name} moved from {expected_version} to {self.version}")
        held: list[tuple[str, str, int]] = []
        transfers = self.engine.payout(payables, held)
        record = PaidOut(as_of.text, as_of.instant_us, self.engine.rules_version, transfers, balances_at, held)
        position = self.position + 1
        pending = self._seal([record])
        try:
            self._write(pending, also=also(position, [record]) if also is not None else ())
        except BaseException:
            self.reload()
            raise
        return position, record

    def record_command(self, record: Held | Released | Rejected,
                       also: Callable[[int, list[Record]], Sequence[Row]] | None = None) -> tuple[int, Record]:
        """Apply and append one SPEC §16 command (hold, release, reject); its
        position and record. A CommandError leaves nothing written."""
        self.ensure_rules()
        self.engine.at = (self.cache.meta.version + 1, 0)
        try:
            applied = apply_record(self.engine, record)
        except BaseException:
            self.reload()  # nothing of a refused command stays in the cache
            raise
        written = self._append([applied], also)
        return self.position, written[0]

    # -------------------------------------------------------------- reading
    def records(self) -> Iterator[tuple[int, Record]]:
        """Every stored record with its journal position, in order."""
        for stored in self.store.read():
            segment = decode_segment(stored.state)
            for offset, record in enumerate(segment.records):
                yield segment.first + offset, record

    def parked_counts(self) -> tuple[int, int]:
        """(parked clicks, parked refunds) right now."""
        return self.engine.parked_counts()


def _chunks(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    chunk: list[Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


