"""Re-executing a journal from its first record: what ``audit replay`` does.

A fresh engine, with its state in a private scratch store (bounded memory
whatever the journal's length), applies every stored record again under the
recorded rules. Each stored segment is checked on the way: its chain link
(the hash it carries is SHA-256 of its predecessor's hash and its own
payload), its first position, and each record against what the rules produce.
At the end the scratch state can be compared with the journal's live state
tables, which must be the same bytes.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Callable, Iterator

import msgspec

from ledger.errors import IntegrityError
from ledger.outcomes import apply_record, raw_of
from ledger.recent import RecentSegments
from ledger.chain import Chain, ChainError
from ledger.engine import Engine
from ledger.engine.tables import StateCache
from ledger.limits import DEFAULT_LIMITS, Limits
from ledger.records import DeadLettered, Ingested, NetworkRebuilt, Record, Segment, decode_segment, network_rebuilt, without_details
from schemas.decode import decode_event
from ledger.statestore import MemoryState, ScratchState, StateReader
from ledger.store import JournalStore

SCRATCH_JOURNAL = 1


@dataclass
class JournalReplay:
    journal: str
    segments: int
    records: int
    head_sha256: bytes  # the chain hash of the last segment (genesis when empty)
    state_differences: list[str]


def stored_segments(store: JournalStore) -> Iterator[tuple[int, bytes, Segment]]:
    """(version, stored bytes, decoded segment) in order; a gap is an integrity error."""
    expected = 1
    for stored in store.read():
        if stored.version != expected:
            raise IntegrityError(f"journal {store.name} segment {expected}: missing (next stored is {stored.version})")
        try:
            segment = decode_segment(stored.state)
        except msgspec.DecodeError as exc:
            raise IntegrityError(f"journal {store.name} segment {stored.version}: unreadable ({exc})") from None
        yield stored.version, stored.state, segment
        expected += 1


def replay_journal(
    store: JournalStore,
    *,
    limits: Limits = DEFAULT_LIMITS,
    verify: bool = True,
    in_memory: bool = False,
    compare_state: bool = False,
    on_segment: Callable[[Engine, int, Segment], None] | None = None,
    progress: Callable[[int], None] | None = None,
    scratch: ScratchState | None = None,
) -> JournalReplay:
    """Re-execute ``store``'s journal (see the module docstring). Raises
    IntegrityError at the first broken link, gap or differing record. With
    ``scratch`` given, the state is left there for the caller (``migrate``),
    who closes it."""
    owned = scratch is None
    if scratch is None:
        scratch = MemoryState() if in_memory else ScratchState()  # type: ignore[assignment]
    cache = StateCache(scratch, SCRATCH_JOURNAL, limits.cache_bytes)
    stored = StoredRecords(store)
    engine = Engine(cache, limits, stored.first_raw)
    name = store.name
    chain = Chain(name)
    position = segments = 0
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for version, data, segment in stored_segments(store):
            try:
                chain.add(version, data, segment.first, len(segment.records))
            except ChainError as exc:
                raise IntegrityError(str(exc)) from None
            stored.current = (version, segment.records)
            replayed = replay_segment(engine, version, segment.records)
            if verify and replayed != segment.records:  # field-by-field Struct equality, then without details
                _raise_first_difference(name, segment, replayed)
            position += len(segment.records)
            segments = version
            meta = cache.meta
            meta.version, meta.position, meta.head_sha256 = version, position, chain.head
            flush = cache.flush()
            scratch.write(SCRATCH_JOURNAL, flush.ops)
            cache.committed(flush)
            if on_segment is not None:
                on_segment(engine, version, segment)
            if progress is not None:
                progress(position)
        differences = compare(store, scratch) if compare_state else []
    finally:
        if gc_was_enabled:
            gc.enable()
        if owned and isinstance(scratch, ScratchState):
            scratch.close()
    return JournalReplay(name, segments, position, chain.head, differences)


class StoredRecords:
    """A replay's view of the journal for repeated event ids: the segment
    being re-executed (as stored) and, further back, stored segments."""

    def __init__(self, store: JournalStore) -> None:
        self.store = store
        self.current: tuple[int, list[Record]] = (0, [])
        self._recent = RecentSegments(store)

    def first_raw(self, version: int, index: int) -> bytes:
        if version == self.current[0]:
            return raw_of(self.current[1][index])
        return raw_of(self._recent.records(version)[index])


def replay_segment(engine: Engine, version: int, records: list[Record]) -> list[Record]:
    """Re-execute one stored segment's records (the walk of a NetworkRebuilt
    runs at the end, as it did live)."""
    decoded = [decode_event(raw_of(r)) if isinstance(r, (Ingested, DeadLettered)) else None for r in records]
    engine.prefetch([d for d in decoded if d is not None])  # as the live batch did: one query per table, not one per miss
    engine.begin_batch()
    replayed = []
    for index, record in enumerate(records):
        if isinstance(record, NetworkRebuilt):
            continue
        engine.at = (version, index)
        replayed.append(apply_record(engine, record, decoded[index]))  # each event decoded once
    walked, transfers = engine.end_batch()
    return replayed + [network_rebuilt(transfers)] if walked else replayed


def _raise_first_difference(journal: str, segment: Segment, replayed: list[Record]) -> None:
    """Raise at the first record that differs beyond its dead letters' wording."""
    if len(replayed) == len(segment.records) and all(
            mine == theirs or without_details(mine) == without_details(theirs)
            for mine, theirs in zip(replayed, segment.records)):
        return
    for offset, (mine, theirs) in enumerate(zip(replayed, segment.records)):
        if without_details(mine) != without_details(theirs):
            raise IntegrityError(
                f"journal {journal} record {segment.first + offset} ({type(theirs).__name__}) "
                "differs from what the rules produce on replay")
    raise IntegrityError(f"journal {journal} records {segment.first}…: {len(segment.records)} stored, "
                         f"{len(replayed)} produced on replay")


SCAN_PAGE = 5_000
STATE_DIFFERENCES_SHOWN = 5


def compare(store: JournalStore, scratch: StateReader) -> list[str]:
    """Differences between the journal's live state tables and ``scratch``
    (the first few, each naming the state key), streamed page by page."""
    live: StateReader = store.state
    differences: list[str] = []
    lo = b""
    while len(differences) < STATE_DIFFERENCES_SHOWN:
        mine = scratch.scan(SCRATCH_JOURNAL, lo, b"\xff" * 32, SCAN_PAGE)
        theirs = live.scan(store.number, lo, b"\xff" * 32, SCAN_PAGE)
        if not mine and not theirs:
            break
        hi = min(mine[-1][0] if len(mine) == SCAN_PAGE else b"\xff" * 32,
                 theirs[-1][0] if len(theirs) == SCAN_PAGE else b"\xff" * 32)
        a = {k: v for k, v in mine if k <= hi}
        b = {k: v for k, v in theirs if k <= hi}
        for key in sorted(a.keys() | b.keys()):
            if a.get(key) != b.get(key):
                kind = ("not in the live state" if key not in b else "not produced by the replay" if key not in a
                        else "differs from the replay")
                differences.append(f"journal {store.name} state key {key[:1].hex()}:{key[1:41]!r}: {kind}")
        lo = hi + b"\x00"
        if hi == b"\xff" * 32:
            break
    return differences[:STATE_DIFFERENCES_SHOWN]


