"""Migrating a store written by an earlier version.

A journal whose state tables are in an earlier format (``state_format`` in its
meta row, ``ledger.statestore.STATE_FORMAT``) is re-executed into a scratch
store, every record checked against what the rules produce and every chain
link against the stored one; then its state tables are replaced by the
scratch state in one transaction. Records, chain and digests are untouched.

A journal written before state tables and hash chains:
For each journal not yet migrated: re-execute it from its first record (as an
audit does), check every stored record against what the rules produce (up to
the fields this version added: an event's instant and order id, a rejected
refund's order id, a payout's balances position), and rewrite each segment as
the re-executed records in a chained frame, together with the state tables
that segment leaves, one transaction per segment. Run it with no writer
attached; it is idempotent (migrated journals are skipped) and resumable.
"""

from __future__ import annotations

from typing import Callable

import msgspec

from ledger.errors import IntegrityError
from ledger.chain import ChainError, link
from ledger.engine import Engine
from ledger.engine.tables import StateCache
from ledger.limits import DEFAULT_LIMITS, Limits
from ledger.records import (
    DeadLetter, DeadLettered, Ingested, PaidOut, Record, Segment, encode_segment, frame, genesis, unframe, without_details,
)
from ledger.replay import SCRATCH_JOURNAL, StoredRecords, replay_journal, replay_segment, stored_segments
from ledger.statestore import STATE_FORMAT, ScratchState
from ledger.store import JournalStore, Store


def migrate(store: Store, *, limits: Limits = DEFAULT_LIMITS, progress: Callable[[str, int], None] | None = None) -> dict[str, int]:
    """Migrate every journal that needs it; return journal → segments rewritten."""
    done: dict[str, int] = {}
    for name in store.journals():
        journal = JournalStore(store, name)
        newest = journal.last()
        if not newest:
            continue
        if unframe(newest[0].state)[0] is None:
            done[name] = _migrate_journal(journal, limits, progress)
        elif StateCache(journal.state, journal.number, 0).meta.state_format != STATE_FORMAT:
            done[name] = _reformat_journal(journal, limits, progress)
    return done


def _reformat_journal(journal: JournalStore, limits: Limits, progress: Callable[[str, int], None] | None) -> int:
    """Re-execute a chained journal into scratch state (checking every record
    and link: ``audit replay``'s re-execution), then replace its state tables with it."""
    scratch = ScratchState()
    try:
        try:
            result = replay_journal(journal, limits=limits, scratch=scratch,
                                    progress=None if progress is None else lambda position: progress(journal.name, position))
        except IntegrityError as exc:
            raise IntegrityError(f"{exc}: not migrated") from None
        journal.store.replace_state(journal.number, scratch, SCRATCH_JOURNAL)
        return result.segments
    finally:
        scratch.close()


def _migrate_journal(journal: JournalStore, limits: Limits, progress: Callable[[str, int], None] | None) -> int:
    name = journal.name
    journal.store.clear_state(journal.number)  # a migration interrupted earlier starts over
    cache = StateCache(journal.state, journal.number, limits.cache_bytes)
    stored = StoredRecords(journal)
    engine = Engine(cache, limits, stored.first_raw)
    head = genesis(name)
    position = 0
    rewritten = 0
    for version, data_before, segment in stored_segments(journal):
        already = unframe(data_before)[0] is not None  # rewritten by a migration interrupted earlier
        stored.current = (version, segment.records)
        replayed = replay_segment(engine, version, segment.records)
        if [_older(r) for r in replayed] != [_older(r) for r in segment.records]:
            for offset, (mine, theirs) in enumerate(zip(replayed, segment.records)):
                if _older(mine) != _older(theirs):
                    raise IntegrityError(f"journal {name} record {segment.first + offset} ({type(theirs).__name__}) "
                                         "differs from what the rules produce: not migrated")
            raise IntegrityError(f"journal {name} segment {version}: another number of records on re-execution")
        if already:
            try:
                head = link(name, version, head, data_before)
            except ChainError as exc:
                raise IntegrityError(str(exc)) from None
            data = data_before
        else:
            migrated = [_kept_details(mine, theirs) for mine, theirs in zip(replayed, segment.records)]
            data, head = frame(head, encode_segment(Segment(segment.first, migrated, segment.recorded_us)))
        position += len(replayed)
        meta = cache.meta
        meta.version, meta.position, meta.head_sha256 = version, position, head
        flush = cache.flush()
        journal.store.rewrite_segment(journal.journal_id, version, data, journal.number, flush.ops)
        cache.committed(flush)
        rewritten += 1
        if progress is not None:
            progress(name, position)
    return rewritten


def _older(record: Record) -> Record:
    """A record as the previous version wrote it: without the added fields,
    and without dead letters' detail texts (prose whose wording changed)."""
    record = without_details(record)
    if isinstance(record, Ingested):
        return msgspec.structs.replace(record, occurred_us=None, order_id=None,
                                       released=[_letter(x) for x in record.released])
    if isinstance(record, DeadLettered):
        return DeadLettered(_letter(record.letter))
    if isinstance(record, PaidOut):
        return msgspec.structs.replace(record, balances_at=0)
    return record


def _letter(letter: DeadLetter) -> DeadLetter:
    return msgspec.structs.replace(letter, order_id=None)


def _kept_details(replayed: Record, stored: Record) -> Record:
    """The re-executed record, with the stored dead letters' detail texts (the
    migration adds fields; it does not reword history)."""
    if isinstance(replayed, DeadLettered) and isinstance(stored, DeadLettered):
        return DeadLettered(msgspec.structs.replace(replayed.letter, detail=stored.letter.detail))
    if isinstance(replayed, Ingested) and isinstance(stored, Ingested) and replayed.released:
        return msgspec.structs.replace(replayed, released=[
            msgspec.structs.replace(mine, detail=theirs.detail) for mine, theirs in zip(replayed.released, stored.released)])
    return replayed
