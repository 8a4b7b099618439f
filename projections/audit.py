"""``audit replay`` (SPEC §12): everything an auditor checks, in two streaming passes.

1. The notification log, once, in commit order: every journal's hash chain
   (each link, no gap), the anchored heads an auditor kept, every payout line
   against the payable balances re-derived where it was computed, the books
   (no malformed transfer), the balances and dead-letter digests, the live
   balances projection against the rebuilt one, each journal's state row
   against its chain head, and each stored Kafka position against the records
   it covers (a position may not run ahead of the last offset recorded + 1).
2. Unless ``fast``: every journal re-executed from its first record under its
   recorded rules (``ledger.replay``), each stored record compared with what
   the rules produce, and the resulting state compared with the live state
   tables.

Every failure is one line naming the journal and position. The result (with
the heads) is recorded in the store, so that ``GET /v1/audit/digest`` serves
the last completed audit without running one.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Callable, Iterable

import msgspec
from eventsourcing.persistence import IntegrityError as EventsourcingIntegrityError

from ledger.errors import IntegrityError
from ledger.books import TREASURY, Books
from ledger.chain import Chain, ChainError, Head
from ledger.config import rules_from_toml_text
from ledger.engine.tables import StateCache
from ledger.records import Adjusted, RecordMoney, SegmentView, dead_letters_of, decode_segment, decode_segment_money, unframe
from ledger.replay_jobs import Reexecution
from ledger.store import JournalStore, Row, Store
from projections.balances import BalanceRow, balance_rows, fold_transfer
from projections.payout_check import PayoutCheck, PayoutCounts
from projections.readmodels import balance_map_as_is
from projections.tables import database

BUCKETS = frozenset({"expense", "pending", "payable", "paid", "adjustment"})
AUDIT_STREAM = "audit:last"
AUDIT_TOPIC = "commission_ledger.Audit"


@dataclass
class AuditResult:
    records: int
    digest: str  # the projections (balances, dead letters, record count)
    differences: list[str]  # live projection vs rebuilt
    unbalanced: dict[str, int]
    position: int  # the store position audited up to
    balances_digest: str = ""  # the non-zero balances alone: equal for the same events however ingested
    heads: list[Head] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # one line each, naming journal and position
    reexecuted: bool = False
    payouts: PayoutCounts = field(default_factory=PayoutCounts)  # what projections.payout_check checked

    @property
    def ok(self) -> bool:
        return not (self.differences or self.unbalanced or self.failures)


class AuditRecord(msgspec.Struct, frozen=True):
    """What ``audit replay`` leaves in the store for the service to serve."""

    ok: bool
    records: int
    store_position: int
    digest: str
    balances_digest: str
    reexecuted: bool
    heads: list[tuple[str, int, str]]
    failures: list[str]
    differences: list[str]
    # Every count (records written before these fields decode with zeros).
    failure_count: int = 0
    difference_count: int = 0
    unbalanced: dict[str, int] = {}
    payouts: int = 0
    payouts_checked: int = 0
    payouts_checked_second_pass: int = 0
    adjustments_checked: int = 0


class _Rebuild:
    """Every projection the digest covers, folded one record at a time."""

    def __init__(self) -> None:
        self.balances: dict[tuple[str, str], list[int]] = {}
        self.malformed: dict[str, int] = {}
        self.letters = hashlib.sha256()
        self.records = 0
        self.position = 0
        self.snapshot_at = 0  # copy the balances as they stand at this store position
        self.balances_at_live: dict[tuple[str, str], list[int]] | None = None

    def add_segment(self, notification_id: int, segment: SegmentView[RecordMoney]) -> None:
        if self.balances_at_live is None and notification_id > self.snapshot_at:
            self.balances_at_live = {key: list(row) for key, row in self.balances.items()}
        for record in segment.records:
            for t in record.transfers:
                fold_transfer(self.balances, t)
                # Double entry holds by construction (a transfer debits one
                # account what it credits another); what can break it is a
                # malformed transfer, so count those per currency.
                if t.amount_minor <= 0 or t.debit == t.credit or not {t.debit, t.credit} <= BUCKETS:
                    self.malformed[t.currency] = self.malformed.get(t.currency, 0) + 1
            for letter in dead_letters_of(record):
                self.letters.update(msgspec.json.encode(
                    (letter.reason, letter.source.text(), base64.b64encode(letter.raw).decode())
                ))
        self.records += len(segment.records)
        self.position = notification_id

    def digest(self) -> str:
        return digest_of(balance_rows(self.balances), self.letters.hexdigest(), self.records)

    def balances_digest(self) -> str:
        rows = [r for r in balance_rows(self.balances) if (r.pending, r.payable, r.paid) != (0, 0, 0)]
        return hashlib.sha256(msgspec.json.encode(rows)).hexdigest()


def digest_of(rows: list[BalanceRow], letters_sha256: str, records: int) -> str:
    canonical = msgspec.json.encode({"records": records, "balances": rows, "dead_letters_sha256": letters_sha256})
    return hashlib.sha256(canonical).hexdigest()


def audit_replay(
    store: Store,
    progress: Callable[[int], None] | None = None,
    *,
    fast: bool = False,
    anchors: Iterable[Head] = (),
    record: bool = True,
    jobs: int = 1,
) -> AuditResult:
    """``jobs`` > 1: the journals re-execute in that many worker processes
    while this one reads the notification log (``ledger.replay_jobs``); the
    result is the same."""
    with Reexecution(store, jobs) as reexecution:
        if not fast:
            reexecution.start(store.journals())  # begun now: they run beside the pass below
        return _audit_replay(store, progress, fast=fast, anchors=anchors, record=record, reexecution=reexecution)


def _audit_replay(
    store: Store,
    progress: Callable[[int], None] | None,
    *,
    fast: bool,
    anchors: Iterable[Head],
    record: bool,
    reexecution: Reexecution,
) -> AuditResult:
    rebuild = _Rebuild()
    chains: dict[str, Chain] = {}
    failures: list[str] = []
    broken: set[str] = set()
    anchored = {(h.journal, h.position): h for h in anchors}
    anchors_met: set[tuple[str, int]] = set()
    offsets: dict[str, int] = {}  # "journal|topic|partition" → highest offset recorded
    payouts = PayoutCheck()
    # The live read models as they stand (not caught up: what readers were
    # served), compared with the rebuild at the position they reflect.
    db = database(store)
    live_position, live_balances = balance_map_as_is(db)
    rebuild.snapshot_at = live_position
    for notification_id, journal, version, stored in store.notifications():
        segment = decode_segment_money(unframe(stored)[1])
        chain = chains.setdefault(journal, Chain(journal))
        if journal not in broken:
            try:
                chain.add(version, stored, segment.first, len(segment.records))
            except ChainError as exc:
                failures.append(str(exc))
                broken.add(journal)
            else:
                key = (journal, chain.position)
                if key in anchored:
                    anchors_met.add(key)
                    if anchored[key].sha256 != chain.head:
                        failures.append(f"journal {journal} position {chain.position}: the anchored head no longer matches "
                                        "(something recorded up to it was changed)")
        full = None  # the whole segment, decoded only for an adjustment (rare)
        for offset, rec in enumerate(segment.records):
            if journal == TREASURY and rec.type == "rules":
                payouts.rules(rec.rules_toml)
            if journal == TREASURY and rec.type == "paid_out":
                failures += payouts.payout(rebuild.balances, segment.first + offset, rec)
            if journal == TREASURY and rec.type == "adjusted":
                full = full or decode_segment(stored)
                adjusted = full.records[offset]
                if isinstance(adjusted, Adjusted):
                    failures += payouts.adjustment(segment.first + offset, adjusted)
            _note_offset(offsets, journal, rec)
        rebuild.add_segment(notification_id, segment)
        payouts.segment_done(notification_id, segment)
        if progress is not None:
            progress(notification_id)
    for (journal, position), head in sorted(anchored.items()):
        if (journal, position) not in anchors_met and journal not in broken:
            end = chains[journal].position if journal in chains else 0
            failures.append(f"journal {journal} position {position}: the anchored head is gone (the journal now ends at {end})")
    failures += payouts.finish(store)  # the payouts whose balances lay too far back for the pass
    failures += _state_rows(store, chains, broken)
    failures += _kafka_positions(store, offsets)
    at_live = rebuild.balances_at_live if rebuild.balances_at_live is not None else rebuild.balances
    differences = _compare(at_live, live_balances) if live_position else []
    if not fast:
        failures += reexecution.failures([name for name in sorted(chains) if name not in broken])
    heads = [chains[name].as_head() for name in sorted(chains)]
    result = AuditResult(rebuild.records, rebuild.digest(), differences, dict(rebuild.malformed), rebuild.position,
                         rebuild.balances_digest(), heads, failures, not fast, payouts.counts)
    if record:
        record_audit(store, result)
    return result


def _note_offset(offsets: dict[str, int], journal: str, rec: RecordMoney) -> None:
    source = rec.source if rec.source is not None else (rec.letter.source if rec.letter is not None else None)
    if source is None or source.topic is None:
        return
    name = f"{journal}|{source.topic}|{source.partition}"
    if source.offset is not None and source.offset > offsets.get(name, -1):
        offsets[name] = source.offset


def _kafka_positions(store: Store, offsets: dict[str, int]) -> list[str]:
    """A stored Kafka position must not run ahead of the records it covers."""
    failures = []
    for name, next_offset in sorted(store.trackings().items()):
        parts = name.split("|")
        if len(parts) != 3 or not parts[0].startswith("kafka:"):
            continue
        covered = offsets.get(name, -1) + 1
        if next_offset > covered:
            failures.append(f"journal {parts[0]} position {name}: stored Kafka position {next_offset} runs ahead of "
                            f"the records (last offset recorded {covered - 1})")
    return failures


def _state_rows(store: Store, chains: dict[str, Chain], broken: set[str]) -> list[str]:
    """Each journal's state row must stand at its chain head."""
    failures = []
    for name, chain in sorted(chains.items()):
        if name in broken:
            continue
        journal = JournalStore(store, name)
        meta = StateCache(journal.state, journal.number, 0).meta
        if (meta.version, meta.position, meta.head_sha256) != (chain.version, chain.position, chain.head):
            failures.append(f"journal {name} position {chain.position}: the state tables stand at position "
                            f"{meta.position} (segment {meta.version}) with another head")
    return failures


def _compare(rebuilt: dict, live: dict) -> list[str]:
    rebuilt_rows = {(r.promoter_id, r.currency): r for r in balance_rows(rebuilt)}
    live_rows = {(r.promoter_id, r.currency): r for r in balance_rows(live)}
    return [
        f"{key[0]} {key[1]}: live {live_rows.get(key)} != rebuilt {rebuilt_rows.get(key)}"
        for key in sorted(rebuilt_rows.keys() | live_rows.keys())
        if rebuilt_rows.get(key) != live_rows.get(key)
    ]


RECORD_ATTEMPTS = 5


def record_audit(store: Store, result: AuditResult) -> None:
    """Append the result to the store's audit stream (the service serves the
    newest). Another audit recording the same version first is retried with
    the next; any other write error is raised, as is a conflict that persists."""
    counts = result.payouts
    summary = AuditRecord(result.ok, result.records, result.position, result.digest, result.balances_digest,
                          result.reexecuted, [(h.journal, h.position, h.sha256.hex()) for h in result.heads],
                          result.failures[:100], result.differences[:100], len(result.failures), len(result.differences),
                          dict(result.unbalanced), counts.payouts, counts.checked, counts.checked_second_pass,
                          counts.adjustments)
    for attempt in range(RECORD_ATTEMPTS):
        rows = store.recorder.select_events(AUDIT_STREAM, desc=True, limit=1)
        version = rows[0].originator_version + 1 if rows else 1
        try:
            store.recorder.insert_events([Row(AUDIT_STREAM, version, AUDIT_TOPIC, msgspec.msgpack.encode(summary))])  # type: ignore[list-item]
            return
        except EventsourcingIntegrityError:  # another audit recorded this version first: the next one
            if attempt == RECORD_ATTEMPTS - 1:
                raise


def last_audit(store: Store) -> AuditRecord | None:
    rows = store.recorder.select_events(AUDIT_STREAM, desc=True, limit=1)
    return msgspec.msgpack.decode(rows[0].state, type=AuditRecord) if rows else None


def current_heads(store: Store) -> list[Head]:
    """Each journal's head as stored now (its newest segment): O(journals)."""
    heads = []
    for name in Books(store).journals():
        journal = JournalStore(store, name)
        newest = journal.last()
        if not newest:
            continue
        carried, payload = unframe(newest[0].state)
        segment = decode_segment_money(payload)
        heads.append(Head(name, segment.first + len(segment.records) - 1, carried or b""))
    return heads


def digest_at(store: Store, position: int) -> str:
    """The digest of the projections as of store position ``position``."""
    rebuild = _Rebuild()
    for notification_id, _, _, stored in store.notifications():
        if notification_id > position:
            break
        rebuild.add_segment(notification_id, decode_segment_money(unframe(stored)[1]))
    return rebuild.digest()
