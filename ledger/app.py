"""The ledger application: the engine, its journal, and the commands.

Opening a ledger replays its journal through a fresh engine and checks that
every stored record is exactly what the engine produces again (integrity); new
work is applied in memory and appended in bounded batches, one transaction per
batch, with the journal version as the optimistic-concurrency check.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import msgspec

from ledger.config import Rules, rules_from_mapping
from ledger.engine import ACCEPTED, DEAD_LETTER, DUPLICATE, PARKED, Engine, Outcome
from ledger.records import (
    Adjusted,
    DeadLettered,
    Ingested,
    PaidOut,
    Record,
    RulesAdopted,
    Settled,
    Source,
    Transfer,
    decode_record,
    encode_record,
)
from ledger.store import ConcurrentWriteError, JournalStore, StoredRecord
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


def record_for(outcome: Outcome, raw: bytes, source: Source) -> Record:
    if outcome.status == DEAD_LETTER:
        assert outcome.dead_letter is not None
        return DeadLettered(outcome.dead_letter)
    assert outcome.event_id is not None
    return Ingested(outcome.status, source, raw, outcome.event_id, outcome.transfers, list(outcome.released))


def _topic(record: Record) -> str:
    return f"commission_ledger.{type(record).__name__}"


def parse_as_of(text: str) -> int:
    instant = parse_timestamp_us(text)
    if instant is None:
        raise CommandError(f"--as-of {text!r} is not an RFC 3339 timestamp (e.g. 2026-01-31T16:00:00Z)")
    return instant


def rules_from_toml_text(text: str) -> Rules:
    import tomllib

    return rules_from_mapping(tomllib.loads(text))


def _settle_heap() -> None:
    """Move the (long-lived, acyclic) ledger state out of the collector's reach.

    The engine holds millions of small objects; without this, every full
    collection re-traverses all of them and costs about half the ingest time.
    """
    gc.freeze()


class Ledger:
    """The embedding API; the CLI is a thin layer over it."""

    def __init__(self, store: JournalStore, *, verify: bool = True, on_record: Callable[[int], None] | None = None) -> None:
        self.store = store
        self.engine = Engine()
        self.version = 0
        self._verify = verify
        self._catch_up(on_record)

    # ------------------------------------------------------------ replaying
    def _catch_up(self, on_record: Callable[[int], None] | None = None) -> None:
        for stored in self.store.read(after_version=self.version):
            self._replay(stored)
            self.version = stored.version
            if stored.version % DEFAULT_BATCH_EVENTS == 0:
                _settle_heap()
            if on_record is not None:
                on_record(stored.version)

    def _replay(self, stored: StoredRecord) -> None:
        try:
            record = decode_record(stored.state)
        except msgspec.DecodeError as exc:
            raise IntegrityError(f"record {stored.version}: unreadable ({exc})") from None
        replayed = apply_record(self.engine, record)
        if self._verify and encode_record(replayed) != stored.state:
            raise IntegrityError(
                f"record {stored.version} ({type(record).__name__}) differs from what the rules produce on replay"
            )

    # -------------------------------------------------------------- writing
    def _append(self, records: list[Record]) -> list[Record]:
        """Append records; if another writer got there first, catch up from the
        store and re-execute them on the current ledger (optimistic
        concurrency). Returns the records as finally written."""
        for _ in range(MAX_WRITE_ATTEMPTS - 1):
            try:
                self.version = self.store.append([(_topic(r), encode_record(r)) for r in records], self.version)
                return records
            except ConcurrentWriteError:
                self._rebuild()
                records = [
                    r for r in (apply_record(self.engine, r) for r in records)
                    if not (isinstance(r, RulesAdopted) and r.version == -1)
                ]
        self.version = self.store.append([(_topic(r), encode_record(r)) for r in records], self.version)
        return records

    def _rebuild(self) -> None:
        """Drop the in-memory state and replay the journal from the start."""
        self.engine = Engine()
        self.version = 0
        self._catch_up()

    def adopt_rules(self, rules: Rules) -> int:
        """Put ``rules`` in force (recorded when they differ); return the version."""
        version = self.engine.adopt_rules(rules)
        if version is not None:
            self._append([RulesAdopted(version, rules.digest(), rules.to_toml())])
        return self.engine.rules_version

    def _ensure_rules(self) -> None:
        if not self.engine.rules:
            self.adopt_rules(Rules())

    def ingest(
        self,
        items: Iterable[tuple[bytes, Source]],
        *,
        batch_events: int = DEFAULT_BATCH_EVENTS,
        progress: Callable[[IngestCounts], None] | None = None,
    ) -> IngestCounts:
        """Apply wire events; one store transaction per ``batch_events``."""
        assert batch_events > 0
        self._ensure_rules()
        counts = IngestCounts()
        batch: list[Record] = []
        for raw, source in items:
            outcome = self.engine.ingest(raw, source)
            counts.add(outcome)
            batch.append(record_for(outcome, raw, source))
            if len(batch) >= batch_events:
                self._append(batch)
                batch = []
                _settle_heap()
                if progress is not None:
                    progress(counts)
        self._append(batch)
        if progress is not None:
            progress(counts)
        return counts

    def settle(self, as_of: str) -> Settled:
        as_of_us = parse_as_of(as_of)
        self._ensure_rules()
        order_ids, transfers = self.engine.settle(as_of_us)
        record = Settled(as_of, as_of_us, self.engine.rules_version, order_ids, transfers)
        return self._append([record])[0]  # type: ignore[return-value]

    def payout(self, as_of: str) -> PaidOut:
        as_of_us = parse_as_of(as_of)
        self._ensure_rules()
        record = PaidOut(as_of, as_of_us, self.engine.rules_version, self.engine.payout())
        return self._append([record])[0]  # type: ignore[return-value]

    def adjust(self, promoter_id: str, currency: str, amount_minor: int, reason: str, actor: str) -> Adjusted:
        validate_adjustment(promoter_id, currency, amount_minor, reason)
        self._ensure_rules()
        transfers = self.engine.adjust(promoter_id, currency, amount_minor)
        record = Adjusted(promoter_id, currency, amount_minor, reason, actor, transfers)
        return self._append([record])[0]  # type: ignore[return-value]

    # -------------------------------------------------------------- reading
    def records(self) -> Iterator[tuple[int, Record]]:
        for stored in self.store.read():
            yield stored.version, decode_record(stored.state)


def validate_adjustment(promoter_id: str, currency: str, amount_minor: int, reason: str) -> None:
    from schemas.events import MAX_SAFE_INT

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
    if isinstance(record, Ingested):
        outcome = engine.ingest(record.raw, record.source)
        return record_for(outcome, record.raw, record.source)
    if isinstance(record, DeadLettered):
        letter = record.letter
        outcome = engine.ingest(letter.raw, letter.source)
        return record_for(outcome, letter.raw, letter.source)
    if isinstance(record, Settled):
        order_ids, transfers = engine.settle(record.as_of_us)
        return Settled(record.as_of, record.as_of_us, engine.rules_version, order_ids, transfers)
    if isinstance(record, PaidOut):
        return PaidOut(record.as_of, record.as_of_us, engine.rules_version, engine.payout())
    assert isinstance(record, Adjusted)
    transfers: list[Transfer] = engine.adjust(record.promoter_id, record.currency, record.amount_minor)
    return Adjusted(record.promoter_id, record.currency, record.amount_minor, record.reason, record.actor, transfers)
