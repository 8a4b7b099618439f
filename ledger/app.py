"""The ledger application: the engine, its journal, and the commands.

Opening a ledger replays its journal through a fresh engine and checks that
every stored record is exactly what the engine produces again (integrity); new
work is applied in memory and appended in bounded batches, one transaction per
batch, with the journal version as the optimistic-concurrency check.
"""

from __future__ import annotations

import gc
import time
import tomllib
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, NamedTuple

import msgspec

from ledger.config import Rules, rules_from_mapping
from ledger.engine import ACCEPTED, DEAD_LETTER, DUPLICATE, PARKED, Engine, Outcome
from ledger.invariants import require
from ledger.limits import DEFAULT_LIMITS, Limits
from ledger.records import (
    Adjusted,
    DeadLetter,
    DeadLettered,
    Ingested,
    NetworkRebuilt,
    PaidOut,
    Record,
    SEGMENT_TOPIC,
    RulesAdopted,
    Segment,
    Settled,
    Source,
    Transfer,
    decode_segment,
    encode_segment,
)
from eventsourcing.persistence import Tracking

from ledger.store import ConcurrentWriteError, JournalStore, StoredRecord
from schemas.decode import Decoded, Rejected, decode_event
from schemas.events import MAX_SAFE_INT, Order
from schemas.timestamps import parse_timestamp_us

DEFAULT_BATCH_EVENTS = 5_000
MAX_WRITE_ATTEMPTS = 5


class IntegrityError(RuntimeError):
    """A stored record differs from what the rules produce when replayed."""


class CommandError(ValueError):
    """A command's arguments are invalid (one line, exit 2)."""


@dataclass
class IngestCounts:
    accepted: int = 0
    duplicates: int = 0
    parked: int = 0
    dead_letters: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.accepted + self.duplicates + self.parked + self.dead_letters

    def add(self, outcome: Outcome) -> None:
        if outcome.status == ACCEPTED:
            self.accepted += 1
        elif outcome.status == DUPLICATE:
            self.duplicates += 1
        elif outcome.status == PARKED:
            self.parked += 1
        else:
            self._dead(outcome.dead_letter.reason)  # type: ignore[union-attr]
        for letter in outcome.released:
            self._dead(letter.reason)

    def _dead(self, reason: str) -> None:
        self.dead_letters += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1

    def merge(self, other: "IngestCounts") -> None:
        """Add ``other``'s counts to these."""
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.parked += other.parked
        self.dead_letters += other.dead_letters
        for reason, n in other.reasons.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + n


def record_for(outcome: Outcome, raw: bytes, source: Source, decoded: Decoded | Rejected | None = None) -> Record:
    if outcome.status == DEAD_LETTER:
        require(outcome.dead_letter is not None, "dead-letter outcome without its letter")
        return DeadLettered(outcome.dead_letter)  # type: ignore[arg-type]
    require(outcome.event_id is not None and isinstance(decoded, Decoded), "outcome without its event")
    event = decoded.event  # type: ignore[union-attr]
    return Ingested(outcome.status, source, raw, outcome.event_id, outcome.transfers, list(outcome.released),  # type: ignore[arg-type]
                    decoded.occurred_us, event.order_id if isinstance(event, Order) else None)  # type: ignore[union-attr]


def parse_as_of(text: str) -> int:
    """An as-of timestamp's instant (µs); CommandError when it is not RFC 3339."""
    instant = parse_timestamp_us(text)
    if instant is None:
        raise CommandError(f"--as-of {text!r} is not an RFC 3339 timestamp (e.g. 2026-01-31T16:00:00Z)")
    return instant


class AsOf(NamedTuple):
    """A command's as-of time: the text as given (recorded) and its instant,
    parsed once on the way in."""

    text: str
    instant_us: int

    @classmethod
    def parse(cls, text: str) -> "AsOf":
        return cls(text, parse_as_of(text))


def rules_from_toml_text(text: str) -> Rules:
    return rules_from_mapping(tomllib.loads(text))


def _settle_heap() -> None:
    """Move the (long-lived, acyclic) ledger state out of the collector's reach.

    The engine holds millions of small objects; without this, every full
    collection re-traverses all of them and costs about half the ingest time.
    """
    gc.freeze()


class Ledger:
    """The embedding API; the CLI is a thin layer over it.

    ``version`` counts stored segments (the optimistic-concurrency check);
    ``position`` counts records (what statements and explanations cite).
    """

    def __init__(
        self,
        store: JournalStore,
        *,
        verify: bool = True,
        replay: bool = True,
        on_record: Callable[[int], None] | None = None,
        on_segment: Callable[[Engine, int, Segment], None] | None = None,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        """Open the ledger in ``store``. ``replay=False`` gives a read-only view
        of the stored records (projections), without rebuilding the engine.
        ``on_segment(engine, version, segment)`` sees each replayed segment
        after the engine applied it (read models built alongside the replay)."""
        self.store = store
        self.limits = limits
        self.engine = Engine(limits)
        self.version = 0
        self.position = 0
        self._verify = verify
        self._on_segment = on_segment
        self.writable = replay
        if replay:
            self._catch_up(on_record)

    # ------------------------------------------------------------ replaying
    def _catch_up(self, on_record: Callable[[int], None] | None = None) -> None:
        gc_was_enabled = gc.isenabled()
        gc.disable()  # as in ingest: the state is acyclic, collections only cost (~20% of a replay)
        try:
            for stored in self.store.read(after_version=self.version):
                self._replay(stored)
                self.version = stored.version
                _settle_heap()
                if on_record is not None:
                    on_record(self.position)
        finally:
            if gc_was_enabled:
                gc.enable()

    def _replay(self, stored: StoredRecord) -> None:
        try:
            segment = decode_segment(stored.state)
        except msgspec.DecodeError as exc:
            raise IntegrityError(f"segment {stored.version}: unreadable ({exc})") from None
        if segment.first != self.position + 1:
            raise IntegrityError(f"segment {stored.version} starts at record {segment.first}, expected {self.position + 1}")
        self.engine.begin_batch()
        replayed = [apply_record(self.engine, record) for record in segment.records]
        walked, _ = self.engine.end_batch()
        if walked:
            raise IntegrityError(f"segment {stored.version}: the promoter network changed but no network record was stored")
        if self._verify and replayed != segment.records:  # field-by-field Struct equality
            for offset, (mine, theirs) in enumerate(zip(replayed, segment.records)):
                if mine != theirs:
                    raise IntegrityError(
                        f"record {segment.first + offset} ({type(theirs).__name__}) differs from what the rules produce on replay"
                    )
            raise IntegrityError(f"segment {stored.version} differs from what the rules produce on replay")
        self.position += len(segment.records)
        if self._on_segment is not None:
            self._on_segment(self.engine, stored.version, segment)

    # -------------------------------------------------------------- writing
    def _encode(self, records: list[Record]) -> list[tuple[str, bytes]]:
        recorded_us = time.time_ns() // 1_000  # metadata only: see Segment.recorded_us
        return [(SEGMENT_TOPIC, encode_segment(Segment(self.position + 1, records, recorded_us)))]

    def _append(self, records: list[Record]) -> list[Record]:
        """Append records as one segment; if another writer got there first,
        catch up from the store and re-execute them on the current ledger
        (optimistic concurrency). Returns the records as finally written."""
        require(self.writable, "a ledger opened with replay=False is read-only")
        for attempt in range(MAX_WRITE_ATTEMPTS):
            if not records:
                return records
            try:
                self.version = self.store.append(self._encode(records), self.version)
                self.position += len(records)
                return records
            except ConcurrentWriteError:
                if attempt == MAX_WRITE_ATTEMPTS - 1:
                    raise
                self._rebuild()
                records = _reexecute(self.engine, records)
        raise ConcurrentWriteError(f"journal {self.store.name}: gave up after {MAX_WRITE_ATTEMPTS} write conflicts")

    def _rebuild(self) -> None:
        """Drop the in-memory state and replay the journal from the start."""
        self.engine = Engine(self.limits)
        self.version = 0
        self.position = 0
        self._catch_up()

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

    def ingest(
        self,
        items: Iterable[tuple[bytes, Source]],
        *,
        batch_events: int = DEFAULT_BATCH_EVENTS,
        progress: Callable[[IngestCounts], None] | None = None,
    ) -> IngestCounts:
        """Apply wire events; one store transaction per ``batch_events``.

        Batch n is written on a background thread while batch n+1 is applied
        (SQLite and psycopg release the GIL while they write); at most one batch
        is in flight, so memory stays bounded. The cyclic garbage collector is
        paused meanwhile: the ledger's state is acyclic, and traversing millions
        of long-lived objects would otherwise cost a fifth of the time.
        """
        require(batch_events > 0, "batch_events must be positive")
        self.ensure_rules()
        counts = IngestCounts()
        batch: list[Record] = []
        gc_was_enabled = gc.isenabled()
        gc.disable()
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-writer")
        inflight: tuple[Future, list[Record]] | None = None
        try:
            self.engine.begin_batch()
            for raw, source in items:
                decoded = decode_event(raw)
                outcome = self.engine.apply_decoded(decoded, raw, source)
                counts.add(outcome)
                batch.append(record_for(outcome, raw, source, decoded))
                if len(batch) >= batch_events:
                    self._close_batch(batch)
                    inflight = self._write_behind(writer, inflight, batch)
                    batch = []
                    self.engine.begin_batch()
                    _settle_heap()
                    if progress is not None:
                        progress(counts)
            self._close_batch(batch)
            if batch:
                inflight = self._write_behind(writer, inflight, batch)
            self._finish(inflight, [])
        finally:
            writer.shutdown(wait=True)
            if gc_was_enabled:
                gc.enable()
        if progress is not None:
            progress(counts)
        return counts

    def _close_batch(self, batch: list[Record]) -> None:
        """End the engine's batch; record the network walk if one ran."""
        walked, transfers = self.engine.end_batch()
        if walked:
            batch.append(NetworkRebuilt(transfers))

    def _write_behind(self, writer: ThreadPoolExecutor, inflight: tuple[Future, list[Record]] | None, records: list[Record]) -> tuple[Future, list[Record]] | None:
        """Wait for the batch in flight, then start writing ``records``."""
        require(self.writable, "a ledger opened with replay=False is read-only")
        if self._finish(inflight, records):
            return None  # written synchronously after a conflict
        encoded = self._encode(records)
        after = self.version
        self.version += 1
        self.position += len(records)
        return writer.submit(self.store.append, encoded, after), records

    def _finish(self, inflight: tuple[Future, list[Record]] | None, following: list[Record]) -> bool:
        """Wait for a write; on a conflict, catch up and re-execute the lost
        batch and ``following`` (already applied in memory) synchronously.
        Returns True when ``following`` was written that way."""
        if inflight is None:
            return False
        future, records = inflight
        try:
            future.result()
            return False
        except ConcurrentWriteError:
            self._rebuild()
            self._append(_reexecute(self.engine, records + following))
            return True

    # ------------------------------------------------- stream processors' API
    def apply(self, items: Iterable[tuple[bytes, Source]]) -> tuple[list[Record], IngestCounts, list[DeadLetter]]:
        """Apply wire events in memory, without writing: the records to commit,
        the counts, and the dead letters they produced (for a DLQ topic)."""
        self.ensure_rules()
        counts = IngestCounts()
        records: list[Record] = []
        letters: list[DeadLetter] = []
        self.engine.begin_batch()
        for raw, source in items:
            decoded = decode_event(raw)
            outcome = self.engine.apply_decoded(decoded, raw, source)
            counts.add(outcome)
            records.append(record_for(outcome, raw, source, decoded))
            if outcome.dead_letter is not None:
                letters.append(outcome.dead_letter)
            letters.extend(outcome.released)
        self._close_batch(records)
        return records, counts, letters

    def commit(self, records: list[Record], trackings: list[Tracking]) -> None:
        """Write ``records`` (already applied by ``apply``) as one segment with the
        source positions they advance, in one transaction. On
        ConcurrentWriteError the in-memory state is ahead of the store: the
        caller must reopen the ledger and resume from the stored positions."""
        if not records:
            return
        self.version = self.store.append(self._encode(records), self.version, trackings)
        self.position += len(records)
        _settle_heap()

    def catch_up(self) -> None:
        """Apply segments other writers (e.g. a ``settle`` command) appended."""
        self._catch_up()

    def settle(self, as_of: AsOf | str) -> Settled:
        """Settle this journal's due orders (SPEC §7); ``as_of`` as text or parsed."""
        if isinstance(as_of, str):
            as_of = AsOf.parse(as_of)
        self.ensure_rules()
        order_ids, transfers = self.engine.settle(as_of.instant_us)
        record = Settled(as_of.text, as_of.instant_us, self.engine.rules_version, order_ids, transfers)
        return self._append([record])[0]  # type: ignore[return-value]

    def record_adjustment(self, promoter_id: str, currency: str, amount_minor: int, reason: str, actor: str) -> Adjusted:
        """Append a manual adjustment (the treasury journal's job: see ledger.books)."""
        validate_adjustment(promoter_id, currency, amount_minor, reason)
        self.ensure_rules()
        transfers = self.engine.adjust(promoter_id, currency, amount_minor)
        record = Adjusted(promoter_id, currency, amount_minor, reason, actor, transfers)
        return self._append([record])[0]  # type: ignore[return-value]

    def record_payout(self, as_of: AsOf, payables: dict[tuple[str, str], int], *, expected_version: int) -> PaidOut:
        """Append one payout of ``payables`` (computed by the caller from every
        journal while this journal was at ``expected_version``); if anything was
        written since, raise ConcurrentWriteError: never pay from stale balances."""
        require(bool(self.engine.rules), "call ensure_rules() first")
        if self.version != expected_version:
            raise ConcurrentWriteError(f"journal {self.store.name} moved from {expected_version} to {self.version}")
        record = PaidOut(as_of.text, as_of.instant_us, self.engine.rules_version, self.engine.payout(payables))
        self.version = self.store.append(self._encode([record]), self.version)
        self.position += 1
        return record

    # -------------------------------------------------------------- reading
    def records(self) -> Iterator[tuple[int, Record]]:
        """Every stored record with its journal position, in order."""
        for stored in self.store.read():
            segment = decode_segment(stored.state)
            for offset, record in enumerate(segment.records):
                yield segment.first + offset, record


def _reexecute(engine: Engine, records: list[Record]) -> list[Record]:
    """Re-execute records (lost in a write race) on a caught-up engine."""
    engine.begin_batch()
    redone = [apply_record(engine, r) for r in records if not isinstance(r, NetworkRebuilt)]
    walked, transfers = engine.end_batch()
    kept = [r for r in redone if not (isinstance(r, RulesAdopted) and r.version == -1)]
    return kept + [NetworkRebuilt(transfers)] if walked else kept


def validate_adjustment(promoter_id: str, currency: str, amount_minor: int, reason: str) -> None:
    if not 1 <= len(promoter_id) <= 128:
        raise CommandError("promoter id must be 1-128 characters")
    if len(currency) != 3 or not currency.isascii() or not currency.isupper() or not currency.isalpha():
        raise CommandError(f"currency {currency!r} must be three capital letters")
    if amount_minor == 0 or abs(amount_minor) > MAX_SAFE_INT:
        raise CommandError("amount must be a non-zero integer of minor units, |amount| ≤ 2^53 − 1")
    if not reason.strip():
        raise CommandError("--reason must not be empty")


def apply_record(engine: Engine, record: Record) -> Record:
    """Re-execute one stored record on ``engine``; return the record it yields."""
    if isinstance(record, RulesAdopted):
        rules = rules_from_toml_text(record.rules_toml)
        version = engine.adopt_rules(rules)
        return RulesAdopted(version if version is not None else -1, rules.digest(), rules.to_toml())
    if isinstance(record, (Ingested, DeadLettered)):
        raw, source = (record.raw, record.source) if isinstance(record, Ingested) else (record.letter.raw, record.letter.source)
        decoded = decode_event(raw)
        return record_for(engine.apply_decoded(decoded, raw, source), raw, source, decoded)
    if isinstance(record, Settled):
        order_ids, transfers = engine.settle(record.as_of_us)
        return Settled(record.as_of, record.as_of_us, engine.rules_version, order_ids, transfers)
    if isinstance(record, NetworkRebuilt):
        _, transfers = engine.end_batch()
        engine.begin_batch()
        return NetworkRebuilt(transfers)
    if isinstance(record, PaidOut):
        engine.book_payout(record.transfers)
        return PaidOut(record.as_of, record.as_of_us, engine.rules_version, record.transfers)
    require(isinstance(record, Adjusted), f"unknown record {type(record).__name__}")
    transfers: list[Transfer] = engine.adjust(record.promoter_id, record.currency, record.amount_minor)
    return Adjusted(record.promoter_id, record.currency, record.amount_minor, record.reason, record.actor, transfers)
