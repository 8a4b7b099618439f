"""The engine's state as tables: a bounded cache over one journal's part of
the state store (``ledger.statestore``).

``Table`` is a point-lookup space: values are decoded once and kept in a
cache evicted by CLOCK (a hit marks its key; eviction walks the keys in
insertion order, giving a marked key a second chance: no reordering per hit);
the engine ``put``s new values and ``touch``es values it changed in place. A
table of values read once (event ids, refund ids, parked refunds and clicks)
is made with ``keep=False``: it holds its values only until the batch that
read or wrote them commits. ``SortedSpace`` is a range-scanned space (settlement order, upline walks,
cold clicks): it keeps no cache, only the writes not yet committed, merged
into every scan. ``StateCache.flush()`` turns what changed into store writes
for the batch's transaction; once that transaction commits, ``committed()``
releases them and evicts the least recently used clean values beyond the
memory budget. Values changed but not yet committed are never evicted, and
no engine object refers to another table's value by reference (only by key),
so an evicted and reloaded value is always the one true copy.

Compiled with mypyc (``Table`` and ``SortedSpace`` are native classes: the
engine's lookups are C calls); ``StateCache`` stays a Python class, so that
the process-wide registry can hold it by weak reference.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Callable, Final, Generic, Iterable, TypeVar

import msgspec
from mypy_extensions import mypyc_attr

from ledger.engine.spaces import META
from ledger.engine.state import JournalMeta
from ledger.invariants import require
from ledger.statestore import STATE_FORMAT, Op, StateReader

K = TypeVar("K")
V = TypeVar("V")

_MISSING: Final = object()  # not in the cache
_ABSENT: Final = object()  # known not to exist in the store
META_KEY = bytes([META])
_meta_decoder = msgspec.msgpack.Decoder(JournalMeta)
_meta_encoder = msgspec.msgpack.Encoder()
END = b"\xff" * 16  # above every key a scan starts from (keys begin with a length or an instant)
ENTRY_OVERHEAD_BYTES = 200  # a cache slot, its key and the value's Python object headers


class Table(Generic[K, V]):
    """One space of point lookups through the cache."""

    def __init__(self, cache: Any, space: int, key: Callable[[K], bytes],
                 encode: Callable[[V], bytes], decode: Callable[[bytes], V], keep: bool = True) -> None:
        self._cache = cache
        self._keep = keep
        self._prefix = bytes([space])
        self._key = key
        self._encode = encode
        self._decode = decode
        self._values: dict[Any, Any] = {}  # insertion order is the CLOCK's order
        self._hit: set[Any] = set()  # keys read since the eviction last passed them
        self._dirty: set[Any] = set()
        self._pinned: dict[Any, int] = {}  # flushed, not yet committed: key → the newest flush holding it
        self._entry_bytes = ENTRY_OVERHEAD_BYTES  # running estimate of one cached entry

    # ---------------------------------------------------------------- reads
    def get(self, key: K) -> V | None:
        value = self._values.get(key, _MISSING)
        if value is _MISSING:
            return self._load(key)
        self._hit.add(key)
        return None if value is _ABSENT else value

    def _load(self, key: K) -> V | None:
        stored = self._cache.reader.get_many(self._cache.journal, [self._prefix + self._key(key)])
        data = next(iter(stored.values()), None)
        return self._remember(key, data)

    def _remember(self, key: K, data: bytes | None) -> V | None:
        if data is None:
            self._values[key] = _ABSENT
            return None
        value = self._decode(data)
        self._values[key] = value
        self._entry_bytes = (self._entry_bytes * 7 + ENTRY_OVERHEAD_BYTES + 3 * len(data)) // 8
        return value

    def prefetch(self, keys: Iterable[K]) -> None:
        """Load the values of ``keys`` not in the cache, in one query."""
        values, prefix, key_of = self._values, self._prefix, self._key
        wanted = {k: prefix + key_of(k) for k in keys if k not in values}
        if not wanted:
            return
        stored = self._cache.reader.get_many(self._cache.journal, list(wanted.values()))
        if not stored:  # all new (every new event id): nothing to decode
            values.update(dict.fromkeys(wanted, _ABSENT))
            return
        for key, raw_key in wanted.items():
            self._remember(key, stored.get(raw_key))

    def cached(self, key: K) -> bool:
        return key in self._values

    # --------------------------------------------------------------- writes
    def put(self, key: K, value: V) -> None:
        self._values[key] = value
        self._dirty.add(key)

    def touch(self, key: K) -> None:
        """``key``'s value (already in the cache) was changed in place."""
        value = self._values.get(key, _MISSING)
        require(value is not _MISSING and value is not _ABSENT, f"touch of a value not held: {key!r}")
        self._dirty.add(key)

    def delete(self, key: K) -> None:
        self._values[key] = _ABSENT
        self._dirty.add(key)

    def dirty_keys(self) -> set[Any]:
        return self._dirty

    # ---------------------------------------------------------- lifecycle
    def _flush(self, ops: list[Op], generation: int) -> list[Any]:
        keys = self._dirty
        self._dirty = set()
        values, prefix, key_of, encode = self._values, self._prefix, self._key, self._encode
        if encode is bytes:  # values stored as they are (fingerprints, markers)
            ops.extend([(prefix + key_of(k), None if (v := values[k]) is _ABSENT else v) for k in keys])
        else:
            ops.extend([(prefix + key_of(k), None if (v := values[k]) is _ABSENT else encode(v)) for k in keys])
        self._pinned.update(dict.fromkeys(keys, generation))  # the newest flush holding each key
        return list(keys)

    def _committed(self, keys: list[Any], generation: int) -> None:
        pinned = self._pinned
        for key in keys:
            if pinned.get(key) == generation:
                del pinned[key]

    def _bytes(self) -> int:
        return len(self._values) * self._entry_bytes

    def _evict(self, keep: int) -> None:
        """CLOCK: drop clean values not read since the last pass, oldest
        inserted first, until at most ``keep`` remain; a read value gets a
        second chance (moved behind the others, its mark cleared)."""
        values, busy, pinned, hit = self._values, self._dirty, self._pinned, self._hit
        excess = len(values) - keep
        if excess <= 0:
            return
        again: dict[Any, Any] = {}
        for key in list(values):
            if excess <= 0:
                break
            if key in busy or key in pinned:
                continue
            if key in hit:
                hit.discard(key)
                again[key] = values.pop(key)
                continue
            del values[key]
            excess -= 1
        if excess > 0:  # every clean value was read since the last pass: drop the oldest of them
            for key in list(again):
                if excess <= 0:
                    break
                del again[key]
                excess -= 1
        values.update(again)
        if len(hit) > 2 * len(values):
            hit.intersection_update(values)

    def _drop_clean(self) -> None:
        """A table of values read once: forget all but what is not yet committed."""
        busy, pinned = self._dirty, self._pinned
        if busy or pinned:
            self._values = {k: v for k, v in self._values.items() if k in busy or k in pinned}
        else:
            self._values = {}
        self._hit = set()

    def _clear(self) -> None:
        self._values = {}
        self._hit = set()
        self._dirty = set()
        self._pinned.clear()


class SortedSpace:
    """One range-scanned space: no cache, only the writes not yet committed."""

    def __init__(self, cache: Any, space: int) -> None:
        self._cache = cache
        self._prefix = bytes([space])
        self._pending: dict[bytes, bytes | None] = {}  # this batch's writes
        self._inflight: list[dict[bytes, bytes | None]] = []  # flushed, oldest first

    def put(self, key: bytes, value: bytes = b"") -> None:
        self._pending[key] = value

    def delete(self, key: bytes) -> None:
        self._pending[key] = None

    def scan(self, lo: bytes, hi: bytes = END, limit: int | None = None) -> list[tuple[bytes, bytes]]:
        """(key, value) with lo ≤ key < hi in key order, writes not yet committed included."""
        layers = [layer for layer in (*self._inflight, self._pending) if layer]
        overlaid = [(k, v) for layer in layers for k, v in layer.items() if lo <= k < hi]
        fetch = None if limit is None else limit + len(overlaid)
        p = self._prefix
        rows = {k[1:]: v for k, v in self._cache.reader.scan(self._cache.journal, p + lo, p + hi, fetch)}
        if overlaid:
            for k, v in overlaid:  # oldest layer first: the newest write wins
                if v is None:
                    rows.pop(k, None)
                else:
                    rows[k] = v
            ordered = sorted(rows.items())
        else:
            ordered = list(rows.items())
        return ordered if limit is None else ordered[:limit]

    def _flush(self, ops: list[Op]) -> dict[bytes, bytes | None]:
        layer, self._pending = self._pending, {}
        p = self._prefix
        ops.extend((p + k, v) for k, v in layer.items())
        self._inflight.append(layer)
        return layer

    def _committed(self, layer: dict[bytes, bytes | None]) -> None:
        require(bool(self._inflight) and self._inflight[0] is layer, "sorted space committed out of order")
        self._inflight.pop(0)

    def _clear(self) -> None:
        self._pending = {}
        self._inflight = []


class Flush:
    """What one ``StateCache.flush`` wrote: released by ``committed``."""

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.ops: list[Op] = []
        self.tables: list[tuple[Table, list[Any]]] = []
        self.spaces: list[tuple[SortedSpace, dict[bytes, bytes | None]]] = []


_open_caches: "weakref.WeakSet[StateCache]" = weakref.WeakSet()  # every cache of this process
_open_caches_lock = threading.Lock()  # threads open ledgers concurrently (service, payout commands)


def _all_caches() -> "list[StateCache]":
    with _open_caches_lock:
        return list(_open_caches)


@mypyc_attr(native_class=False)  # weakly referenced by the registry above
class StateCache:
    """One journal's working state: its tables, within the process's memory budget."""

    def __init__(self, reader: StateReader, journal: int, budget_bytes: int) -> None:
        self.reader = reader
        self.journal = journal
        self.budget_bytes = budget_bytes
        self.tables: list[Table] = []
        self.spaces: list[SortedSpace] = []
        self._before_flush: list[Callable[[], None]] = []
        self._generation = 0
        with _open_caches_lock:
            _open_caches.add(self)
        stored = reader.get_many(journal, [META_KEY]).get(META_KEY)
        # The journal's own row, always resident (the engine's parts keep it).
        self.meta = _meta_decoder.decode(stored) if stored is not None else JournalMeta(state_format=STATE_FORMAT)
        self.meta_stored = stored is not None

    def table(self, space: int, key: Callable[[K], bytes], encode: Callable[[V], bytes],
              decode: Callable[[bytes], V], keep: bool = True) -> Table[K, V]:
        """A point-lookup space; ``keep=False`` for values read once (held
        only until the batch that read or wrote them commits)."""
        table: Table[K, V] = Table(self, space, key, encode, decode, keep)
        self.tables.append(table)
        return table

    def sorted_space(self, space: int) -> SortedSpace:
        space_ = SortedSpace(self, space)
        self.spaces.append(space_)
        return space_

    def before_flush(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` at the start of every flush (last changes of a batch)."""
        self._before_flush.append(hook)

    def flush(self) -> Flush:
        """Everything changed since the last flush, as store writes."""
        for hook in self._before_flush:
            hook()
        self._generation += 1
        flush = Flush(self._generation)
        flush.ops.append((META_KEY, _meta_encoder.encode(self.meta)))
        for table in self.tables:
            if table._dirty:
                flush.tables.append((table, table._flush(flush.ops, flush.generation)))
        for space in self.spaces:
            if space._pending:
                flush.spaces.append((space, space._flush(flush.ops)))
        return flush

    def committed(self, flush: Flush) -> None:
        """``flush``'s writes are in the store: release them, then keep the
        cache within its budget."""
        for table, keys in flush.tables:
            table._committed(keys, flush.generation)
        for space, layer in flush.spaces:
            space._committed(layer)
        for table in self.tables:
            if not table._keep:
                table._drop_clean()
        self.trim()

    def trim(self) -> None:
        """Keep the process's caches within the budget: one number for all the
        journals a process has open (a consumer has one per partition), each
        cache trimming itself to its share when the sum is over."""
        mine = self.cached_bytes()
        caches = _all_caches()
        total = sum(cache.cached_bytes() for cache in caches) if len(caches) > 1 else mine
        if total <= self.budget_bytes or not mine:
            return
        ratio = self.budget_bytes / total
        for table in self.tables:
            table._evict(int(len(table._values) * ratio))

    def invalidate(self) -> None:
        """Forget everything (another writer moved the journal, or a write
        failed): values are read again from the store."""
        for table in self.tables:
            table._clear()
        for space in self.spaces:
            space._clear()

    def cached_bytes(self) -> int:
        return sum(t._bytes() for t in self.tables)
