"""What applying one event yields, and the way back: an outcome counted, the
record an outcome is stored as, the last-resort guard that turns an unexpected
exception into a dead letter, and the re-execution of a stored record (the
same path live and in ``audit replay``)."""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass, field

from eventsourcing.persistence import PersistenceError

from ledger.config import rules_from_toml_text
from ledger.engine import ACCEPTED, DEAD_LETTER, DUPLICATE, PARKED, Engine, Outcome
from ledger.invariants import require
from ledger.records import (
    Adjusted,
    detach_groups,
    network_rebuilt,
    DeadLetter,
    DeadLettered,
    Held,
    Ingested,
    NetworkRebuilt,
    PaidOut,
    Record,
    Rejected as RejectedOrder,
    Released,
    RulesAdopted,
    Settled,
    Source,
    Transfer,
)
from ledger.store import StoreError, one_line
from schemas import reasons
from schemas.decode import Decoded, Rejected, decode_event
from schemas.events import Order

log = logging.getLogger("commission_ledger.ledger")


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
    transfers, groups = detach_groups(outcome.transfers)
    return Ingested(outcome.status, source, raw, outcome.event_id, transfers, list(outcome.released),  # type: ignore[arg-type]
                    decoded.occurred_us, event.order_id if isinstance(event, Order) else None,  # type: ignore[union-attr]
                    groups)


def guarded(exc: Exception, raw: bytes, source: Source) -> Outcome:
    """The last resort: an unexpected exception while applying one event
    dead-letters that event (``schema_violation``, naming the exception)
    instead of stopping the batch; the stream moves on. A failure of the store
    itself is not the event's fault: it propagates, and the batch is retried."""
    if isinstance(exc, (StoreError, PersistenceError, OSError, MemoryError, sqlite3.Error)) or type(exc).__module__.startswith("psycopg"):
        raise exc
    log.error("unexpected %s applying %s; dead-lettered", type(exc).__name__, source.text(), exc_info=exc)
    detail = f"{type(exc).__name__} while applying: {one_line(exc)}"[:300]
    return Outcome(DEAD_LETTER, None, [], DeadLetter(reasons.SCHEMA_VIOLATION, detail, source, raw, None))


def raw_of(record: Record) -> bytes:
    """The raw event of a record that holds one (an ingested event or a dead letter)."""
    if isinstance(record, Ingested):
        return record.raw
    require(isinstance(record, DeadLettered), f"{type(record).__name__} holds no raw event")
    return record.letter.raw  # type: ignore[union-attr]


def apply_record(engine: Engine, record: Record, decoded: Decoded | Rejected | None = None) -> Record:
    """Re-execute one stored record on ``engine``; return the record it yields.
    ``decoded``: the record's event as ``decode_event`` gives it, when the caller has it."""
    if isinstance(record, RulesAdopted):
        rules = rules_from_toml_text(record.rules_toml)
        version = engine.adopt_rules(rules)
        return RulesAdopted(version if version is not None else -1, rules.digest(), rules.to_toml())
    if isinstance(record, (Ingested, DeadLettered)):
        raw, source = (record.raw, record.source) if isinstance(record, Ingested) else (record.letter.raw, record.letter.source)
        if decoded is None:
            decoded = decode_event(raw)
        try:
            outcome = engine.apply_decoded(decoded, raw, source)
        except Exception as exc:  # noqa: BLE001 - the same last-resort guard as live
            outcome = guarded(exc, raw, source)
        return record_for(outcome, raw, source, decoded)
    if isinstance(record, Settled):
        return settled_record(engine, record.as_of, record.as_of_us, record.limit_orders)
    if isinstance(record, NetworkRebuilt):
        _, transfers = engine.end_batch()
        engine.begin_batch()
        return network_rebuilt(transfers)
    if isinstance(record, PaidOut):
        engine.book_payout(record.transfers, record.held)
        return PaidOut(record.as_of, record.as_of_us, engine.rules_version, record.transfers, record.balances_at, record.held)
    if isinstance(record, Held):
        engine.hold(record.target, record.id, record.actor, record.reason)
        return record
    if isinstance(record, Released):
        engine.release(record.target, record.id, record.actor, record.reason)
        return record
    if isinstance(record, RejectedOrder):
        transfers, groups = detach_groups(engine.reject(record.id, record.actor, record.reason))
        return RejectedOrder(record.id, record.actor, record.reason, transfers, groups)
    require(isinstance(record, Adjusted), f"unknown record {type(record).__name__}")
    transfers: list[Transfer] = engine.adjust(record.promoter_id, record.currency, record.amount_minor)
    return Adjusted(record.promoter_id, record.currency, record.amount_minor, record.reason, record.actor, transfers)


def settled_record(engine: Engine, as_of: str, as_of_us: int, limit_orders: int) -> Settled:
    """Settle on ``engine`` (``engine.at`` set) and the record of it: the
    orders settled, and those held for review or waiting on a hold (SPEC §16)."""
    order_ids, grouped = engine.settle(as_of_us, limit_orders)
    transfers, groups = detach_groups(grouped)
    review = list(engine.holds.reviewed)
    return Settled(as_of, as_of_us, engine.rules_version, order_ids, transfers, limit_orders,
                   review, engine.held_waiting(as_of_us), groups)
