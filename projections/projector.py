"""The projector: folds the notification log into the read-model tables
(``projections.tables``), with tracking.

It reads the segments after its tracked position (``rm_tracking``) and folds
them a chunk at a time (``CHUNK_SEGMENTS`` segments, fewer once they hold
``CHUNK_RECORDS`` records: a writer waits for the transaction). For each chunk:

1. read what the chunk needs of the tables (the balances, statement counters
   and orders it touches) and the tracked position P they reflect;
2. fold the chunk in memory;
3. in one write transaction: move the tracking row from P to the chunk's last
   store position *only if it still says P* (compare-and-set), then write.

Two processes catching up at once (``project --follow`` and a reader, or two
readers) never apply a chunk twice: the loser's compare-and-set matches no row,
it writes nothing and re-reads the position. Nothing can change the tables
between its read and its write unless the tracking row moved too (every write
goes with a move of that row), so a chunk that wins was folded on exactly the
state it writes over. A crash loses at most the uncommitted chunk, which the
next catch-up folds again. Readers call ``catch_up`` first, so each pays for
the segments committed since the last catch-up: usually none (two indexed
queries).
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Union

import msgspec

from ledger import log
from ledger.records import EXPENSE, RecordMoney, cause_of, dead_letters_of
from ledger.store import Store, StoreError
from projections.tables import PROJECTOR, Database, database

from ledger.records import unframe

CHUNK_SEGMENTS = 20  # segments per transaction at most (each holds a batch of up to 5,000 records)…
CHUNK_RECORDS = 50_000  # …and no more once this many records are in (a writer waits for the transaction)
IN_CHUNK = 500  # keys per IN (…) list
_BUCKET = {"pending": 0, "payable": 1, "paid": 2}


class RecordFacts(RecordMoney, frozen=True, gc=False):
    """What the read models need of a record: RecordMoney plus the orders a
    settle froze (the merchant statement's ``settled``)."""

    order_ids: list[str] = []


class SegmentFacts(msgspec.Struct, frozen=True, gc=False):
    first: int
    records: list[RecordFacts]
    recorded_us: int = 0


_facts_decoder = msgspec.msgpack.Decoder(SegmentFacts)


def decode_segment_facts(stored: bytes) -> SegmentFacts:
    return _facts_decoder.decode(unframe(stored)[1])


class CatchUp(NamedTuple):
    position: int  # the store position the tables reflect now
    segments: int  # folded by this call
    records: int
    seconds: float


Chunk = list[tuple[int, str, SegmentFacts]]
OrderRow = list[Any]  # store_position, position, occurred_us, merchant_id, currency, accrued, reversed, settled, level1_id


def tracked_position(db: Database) -> int:
    with db.read() as c:
        row = c.execute("SELECT position FROM rm_tracking WHERE name = ?", (PROJECTOR,)).fetchone()
    return row[0] if row else 0


def catch_up(store: Store, progress: Callable[[int, int], None] | None = None) -> CatchUp:
    """Fold every segment committed after the tracked position into the tables.
    ``progress(segments, records)`` after each chunk. One catch-up at a time
    per database object in this process; other processes are kept honest by
    the compare-and-set. With nothing to fold it takes no lock (a read that
    finds the tables current never waits for another thread's fold)."""
    db = database(store)
    started = time.monotonic()
    segments = records = 0
    position = tracked_position(db)
    if not store.any_segment_after(position):
        return CatchUp(position, 0, 0, time.monotonic() - started)
    with _lock_of(db):
        position = tracked_position(db)
        while True:
            lost = False
            for chunk in _segment_chunks(log.segments(store, after=position, decode=decode_segment_facts)):
                folded = _Fold(db, position, chunk, store).run()
                if folded is None:  # another process folded it first
                    position = tracked_position(db)
                    lost = True
                    break
                position = folded
                segments += len(chunk)
                records += sum(len(s.records) for _, _, s in chunk)
                if progress is not None:
                    progress(segments, records)
            if not lost:
                return CatchUp(position, segments, records, time.monotonic() - started)


def _lock_of(db: Database) -> threading.Lock:
    lock = getattr(db, "fold_lock", None)
    if lock is None:
        lock = db.fold_lock = threading.Lock()  # type: ignore[attr-defined]
    return lock


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _segment_chunks(segments: Iterable[tuple[int, str, SegmentFacts]]) -> Iterator[Chunk]:
    """Segments in chunks of at most CHUNK_SEGMENTS, closed once they hold
    CHUNK_RECORDS records (one segment, however large, is never split)."""
    chunk: Chunk = []
    records = 0
    for item in segments:
        chunk.append(item)
        records += len(item[2].records)
        if len(chunk) == CHUNK_SEGMENTS or records >= CHUNK_RECORDS:
            yield chunk
            chunk, records = [], 0
    if chunk:
        yield chunk


def _in_lists(keys: Iterable[Any]) -> Iterator[list[Any]]:
    return _chunks(keys, IN_CHUNK)


def _marks(n: int) -> str:
    return ",".join("?" * n)



def merchant_label(merchant_id: str) -> str:
    """The prefix of a merchant's labels in rm_counts' kept totals (length-
    prefixed: no merchant's prefix is another's); the currency follows."""
    return f"{len(merchant_id)}:{merchant_id}"


def owes(counts: dict[tuple[str, str], int], merchant_id: str, currency: str, accrued: int, reversed_: int) -> None:
    """Kept totals of the merchant statement: accrued and reversed per
    (merchant, currency), moved with each order's (SPEC §13)."""
    label = merchant_label(merchant_id) + currency
    counts[("merchant_accrued", label)] = counts.get(("merchant_accrued", label), 0) + accrued
    counts[("merchant_reversed", label)] = counts.get(("merchant_reversed", label), 0) + reversed_

class _Fold:
    """One chunk: load, fold in memory, write with the compare-and-set."""

    def __init__(self, db: Database, start: int, chunk: Chunk, store: Store | None = None) -> None:
        self.db = db
        self.store = store  # to read the segments a payout raced with, when they lie before the chunk
        self.start = start
        self.chunk = chunk
        self.balances: dict[tuple[str, str], list[int]] = {}  # pending, payable, paid
        self.payout_state: dict[tuple[str, str], list[int]] = {}  # carried, paid_through_entry
        self.entries: dict[str, int] = {}  # statement entries per promoter
        self.orders: dict[tuple[str, str], OrderRow] = {}
        self.next: dict[str, int] = {}  # sequence counters: statement seq, dead letter n
        self.counts: dict[tuple[str, str], int] = {}
        # The level-1 promoter of each order's latest level-1 accrual: the group
        # of its level-2 entries that their record does not name (SPEC §14:
        # under scope = "any" or "merchant" an order is one group).
        self.level1: dict[tuple[str, str], Union[str, None]] = {}
        self.level1_wanted: dict[str, set[str]] = {}

    # ------------------------------------------------------------------ load
    def _wanted(self) -> tuple[set[str], dict[str, set[str]]]:
        promoters: set[str] = set()
        orders: dict[str, set[str]] = {}
        created_in: dict[str, set[str]] = {}  # orders made known in this chunk: not in the tables yet
        for _, journal, segment in self.chunk:
            wanted = orders.setdefault(journal, set())
            created = created_in.setdefault(journal, set())
            for record in segment.records:
                if record.order_id is not None and record.outcome != "duplicate":
                    created.add(record.order_id)
                if record.transfers:
                    settle = record.type == "settled"  # needs no order rows: see _fold
                    named = {i for i, _ in record.groups}
                    for i, t in enumerate(record.transfers):
                        promoters.add(t.promoter_id)
                        if t.order_id is not None and not settle and t.order_id not in created:
                            wanted.add(t.order_id)
                        if settle and t.level == 2 and i not in named and t.order_id not in created:
                            self.level1_wanted.setdefault(journal, set()).add(t.order_id)
        return promoters, orders

    def _load(self) -> bool:
        promoters, orders = self._wanted()
        with self.db.read() as c:
            row = c.execute("SELECT position FROM rm_tracking WHERE name = ?", (PROJECTOR,)).fetchone()
            if row is None:
                raise StoreError(f"read models: rm_tracking has no row {PROJECTOR!r}; drop the rm_* tables to rebuild them")
            if row[0] != self.start:
                return False
            self.next = dict(c.execute("SELECT label, n FROM rm_counts WHERE metric = 'next'").fetchall())
            for keys in _in_lists(promoters):
                c.execute("SELECT promoter_id, currency, pending_minor, payable_minor, paid_minor, carried_minor, "
                          f"paid_through_entry FROM rm_balances WHERE promoter_id IN ({_marks(len(keys))})", keys)
                for p, cur, pending, payable, paid, carried, through in c.fetchall():
                    self.balances[(p, cur)] = [pending, payable, paid]
                    self.payout_state[(p, cur)] = [carried, through]
                c.execute(f"SELECT promoter_id, entries FROM rm_promoters WHERE promoter_id IN ({_marks(len(keys))})", keys)
                self.entries.update(c.fetchall())
            for journal, ids in orders.items():
                for keys in _in_lists(ids):
                    c.execute("SELECT order_id, store_position, position, occurred_us, merchant_id, currency, "
                              "accrued_minor, reversed_minor, settled, level1_id FROM rm_orders "
                              f"WHERE journal = ? AND order_id IN ({_marks(len(keys))})", [journal, *keys])
                    for order_id, *values in c.fetchall():
                        self.orders[(journal, order_id)] = values
                        self.level1[(journal, order_id)] = values[8]
            for journal, ids in self.level1_wanted.items():  # a settle's level-2 entries: only the group is needed
                for keys in _in_lists(ids):
                    c.execute(f"SELECT order_id, level1_id FROM rm_orders WHERE journal = ? AND order_id IN "
                              f"({_marks(len(keys))})", [journal, *keys])
                    for order_id, level1_id in c.fetchall():
                        self.level1[(journal, order_id)] = level1_id
        return True

    # ------------------------------------------------------------------ fold
    def run(self) -> int | None:
        """The new tracked position, or None when another process got there first."""
        if not self._load():
            return None
        rows = self._fold()
        return self._write(rows)

    def _fold(self) -> dict[str, list]:
        balances, payout_state, entries, orders, counts = (
            self.balances, self.payout_state, self.entries, self.orders, self.counts)
        seq = self.next.get("statement_seq", 0)
        letter_n = self.next.get("dead_letter", 0)
        recorded_max_us = self.next.get("recorded_max_us", 0)  # the latest recorded_us of the segments so far
        statement_rows: list[tuple] = []
        letter_rows: list[tuple] = []
        segment_rows: list[tuple] = []
        payout_rows: list[tuple] = []
        line_rows: list[tuple] = []
        settled: dict[str, list[str]] = {}  # journal → the orders a settle froze
        history_rows: list[tuple] = []
        dirty_orders: set[tuple[str, str]] = set()
        kinds: dict[str, int] = {}
        for store_position, journal, segment in self.chunk:
            recorded_max_us = max(recorded_max_us, segment.recorded_us)
            segment_rows.append((store_position, journal, segment.first, len(segment.records), segment.recorded_us,
                                 recorded_max_us))
            moved: set[tuple[str, str]] = set()
            position = segment.first - 1
            for record in segment.records:
                position += 1
                kind = record.type
                kinds[kind] = kinds.get(kind, 0) + 1
                transfers = record.transfers
                when: Union[int, None] = None
                if kind == "ingested":
                    when = record.occurred_us
                    if record.order_id is not None and record.outcome != "duplicate":
                        key = (journal, record.order_id)
                        order = orders.get(key)
                        if order is None:
                            orders[key] = [store_position, position, when, None, None, 0, 0, 0, None]
                        elif order[0] is None:
                            order[0:3] = [store_position, position, when]
                        dirty_orders.add(key)
                    if not transfers and not record.released:
                        continue  # most clicks and shares: nothing more to fold
                elif kind == "settled" or kind == "paid_out":
                    when = record.as_of_us
                # A settle moves pending to payable (no merchant money) of orders
                # with occurred_at + lock period ≤ its as-of (SPEC §7; the lock
                # period is ≥ 0): its entries' event time is its as-of, and it
                # needs no order row (its orders' ``settled`` flag is set below).
                orders_touched = kind != "settled"
                cause = cause_of(record) if transfers else None
                if kind == "paid_out":  # entries committed after the balances it paid: the next batch's
                    late_entries, late_payable = self._late(record.balances_at or 0, store_position)
                    first_entry: dict[str, int] = {}
                named = dict(record.groups) if record.groups else None
                reversed1: dict[str, str] = {}  # order → the level-1 promoter this record took commission from
                for line, t in enumerate(transfers):
                    promoter, currency, amount = t.promoter_id, t.currency, t.amount_minor
                    if kind == "paid_out" and promoter not in first_entry:
                        first_entry[promoter] = entries.get(promoter, 0)
                    bkey = (promoter, currency)
                    balance = balances.get(bkey)
                    if balance is None:
                        balance = balances[bkey] = [0, 0, 0]
                        payout_state[bkey] = [0, 0]
                        for label in ("", currency):  # kept counts: /metrics and the balances page count nothing
                            counts[("balance_rows", label)] = counts.get(("balance_rows", label), 0) + 1
                    moved.add(bkey)
                    i = _BUCKET.get(t.debit)
                    if i is not None:
                        balance[i] -= amount
                    i = _BUCKET.get(t.credit)
                    if i is not None:
                        balance[i] += amount
                    entry = entries[promoter] = entries.get(promoter, 0) + 1
                    seq += 1
                    at_us = when
                    order_id = t.order_id
                    if order_id is not None and orders_touched:
                        okey = (journal, order_id)
                        order = orders.get(okey)
                        if order is None:  # a transfer of an order whose event the journal lacks
                            order = orders[okey] = [None, None, None, None, None, 0, 0, 0, None]
                            dirty_orders.add(okey)
                        # Event time: the later of the cause's and the order's.
                        if order[2] is not None and (at_us is None or order[2] > at_us):
                            at_us = order[2]
                        if order[3] is None and t.merchant_id is not None:
                            order[3], order[4] = t.merchant_id, currency
                            dirty_orders.add(okey)
                            owes(counts, order[3], order[4], order[5], order[6])  # what it owed before
                        if t.debit == EXPENSE:
                            order[5] += amount
                            dirty_orders.add(okey)
                            if order[3] is not None:
                                owes(counts, order[3], order[4], amount, 0)
                        elif t.credit == EXPENSE:
                            order[6] += amount
                            dirty_orders.add(okey)
                            if order[3] is not None:
                                owes(counts, order[3], order[4], 0, amount)
                    group = None
                    if order_id is not None and t.level is not None:
                        group = self._group(journal, order_id, t, named.get(line) if named else None, reversed1, orders)
                    statement_rows.append((
                        promoter, entry, seq, store_position, journal, position, t.kind, currency, amount, t.debit,
                        t.credit, order_id, t.level, t.rules_version, cause, balance[0], balance[1], balance[2], at_us,
                        group,
                    ))
                    if kind == "paid_out":
                        # The line pays the entries since the key's last payout, on top of what that left,
                        # up to the balances position it paid from; later entries carry into the next batch.
                        state = payout_state[bkey]
                        cut = first_entry[promoter] - late_entries.get(promoter, 0)
                        line_rows.append((journal, position, line, promoter, currency, amount, state[0], state[1], cut))
                        state[0], state[1] = balance[1] - late_payable.get(bkey, 0), cut
                if kind == "paid_out":
                    counts[("payouts", journal)] = counts.get(("payouts", journal), 0) + 1
                    payout_rows.append((journal, position, store_position, record.as_of, record.as_of_us, len(transfers)))
                elif kind == "settled":
                    settled.setdefault(journal, []).extend(record.order_ids)
                    for order_id in record.order_ids:
                        order = orders.get((journal, order_id))
                        if order is not None:
                            order[7] = 1
                for letter in dead_letters_of(record):
                    letter_n += 1
                    letter_rows.append((letter_n, store_position, journal, position, letter.reason, letter.detail,
                                        letter.source.text(), letter.raw, letter.event_id, letter.order_id))
                    counts[("dead_letters", letter.reason)] = counts.get(("dead_letters", letter.reason), 0) + 1
            counts[("records", "")] = counts.get(("records", ""), 0) + len(segment.records)
            history_rows += [(p, cur, store_position, *balances[(p, cur)]) for p, cur in moved]
        for kind, n in kinds.items():
            counts[("records", kind)] = n
        self.next = {"statement_seq": seq, "dead_letter": letter_n, "recorded_max_us": recorded_max_us}
        return {
            "statement": statement_rows, "history": history_rows, "letters": letter_rows, "segments": segment_rows,
            "payouts": payout_rows,
            "lines": line_rows, "settled": settled,
            "orders": [(j, o, *orders[(j, o)]) for j, o in dirty_orders],
        }

    def _group(self, journal: str, order_id: str, t: Any, named: Union[str, None], reversed1: dict[str, str],
               orders: dict[tuple[str, str], OrderRow]) -> Union[str, None]:
        """The commission group (its level-1 promoter, SPEC §14) of an order's
        entry: the one its record names (a level-2 entry posted per group,
        scope = "product"); else a level-1 entry's own promoter; else, for
        level 2 (one group per order), the level-1 promoter whose commission
        this record took back when it takes level 2 back too (a re-attribution,
        a refund, a rejection), or the order's latest level-1 accrual."""
        okey = (journal, order_id)
        if t.level == 1:
            if t.debit == EXPENSE:
                self.level1[okey] = t.promoter_id
                order = orders.get(okey)
                if order is not None:
                    order[8] = t.promoter_id
            elif t.credit == EXPENSE:
                reversed1[order_id] = t.promoter_id
            return t.promoter_id
        if named is not None:
            return named
        if t.credit == EXPENSE and order_id in reversed1:
            return reversed1[order_id]
        return self.level1.get(okey)

    def _late(self, balances_at: int, store_position: int) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
        """What was committed after a payout's balances position and before the
        payout (a settle or a refund racing it; usually nothing): the number of
        statement entries per promoter, and the payable they moved per key."""
        entries: dict[str, int] = {}
        payable: dict[tuple[str, str], int] = {}
        if balances_at <= 0 or balances_at >= store_position - 1:
            return entries, payable
        segments = [segment for sp, _, segment in self.chunk if balances_at < sp < store_position]
        chunk_start = self.chunk[0][0]
        if balances_at + 1 < chunk_start and self.store is not None:
            for sp, _, segment in log.segments(self.store, after=balances_at, decode=decode_segment_facts):
                if sp >= chunk_start:
                    break
                segments.append(segment)
        for segment in segments:
            for record in segment.records:
                for t in record.transfers:
                    entries[t.promoter_id] = entries.get(t.promoter_id, 0) + 1
                    signed = (t.credit == "payable") - (t.debit == "payable")
                    if signed:
                        key = (t.promoter_id, t.currency)
                        payable[key] = payable.get(key, 0) + signed * t.amount_minor
        return entries, payable

    # ----------------------------------------------------------------- write
    def _write(self, rows: dict[str, list]) -> int | None:
        new_position = self.chunk[-1][0]
        with self.db.write() as c:
            c.execute("UPDATE rm_tracking SET position = ? WHERE name = ? AND position = ?",
                      (new_position, PROJECTOR, self.start))
            if c.rowcount != 1:
                return None
            c.insert("rm_segments", "store_position, journal, first_position, records, recorded_us, recorded_max_us",
                     rows["segments"])
            c.insert("rm_statement", "promoter_id, entry, seq, store_position, journal, position, kind, currency, "
                     "amount_minor, debit, credit, order_id, level, rules_version, cause, pending_minor, payable_minor, "
                     "paid_minor, event_us, group_id", rows["statement"])
            c.insert("rm_balance_history", "promoter_id, currency, store_position, pending_minor, payable_minor, "
                     "paid_minor", rows["history"])
            c.insert("rm_dead_letters", "n, store_position, journal, position, reason, detail, source, raw, event_id, "
                     "order_id", rows["letters"])
            c.insert("rm_payouts", "journal, position, store_position, as_of, as_of_us, lines", rows["payouts"])
            c.insert("rm_payout_lines", "journal, position, line, promoter_id, currency, amount_minor, "
                     "carried_over_minor, after_entry, through_entry", rows["lines"])
            c.insert("rm_balances", "promoter_id, currency, pending_minor, payable_minor, paid_minor, carried_minor, "
                     "paid_through_entry",
                     [(p, cur, *b, *self.payout_state[(p, cur)]) for (p, cur), b in self.balances.items()],
                     " ON CONFLICT (promoter_id, currency) DO UPDATE SET pending_minor = excluded.pending_minor, "
                     "payable_minor = excluded.payable_minor, paid_minor = excluded.paid_minor, "
                     "carried_minor = excluded.carried_minor, paid_through_entry = excluded.paid_through_entry")
            c.insert("rm_promoters", "promoter_id, entries", list(self.entries.items()),
                     " ON CONFLICT (promoter_id) DO UPDATE SET entries = excluded.entries")
            c.insert("rm_orders", "journal, order_id, store_position, position, occurred_us, merchant_id, currency, "
                     "accrued_minor, reversed_minor, settled, level1_id", rows["orders"],
                     " ON CONFLICT (journal, order_id) DO UPDATE SET store_position = excluded.store_position, "
                     "position = excluded.position, occurred_us = excluded.occurred_us, "
                     "merchant_id = excluded.merchant_id, currency = excluded.currency, "
                     "accrued_minor = excluded.accrued_minor, reversed_minor = excluded.reversed_minor, "
                     "settled = excluded.settled, level1_id = excluded.level1_id")
            for journal, order_ids in rows["settled"].items():
                for keys in _in_lists(order_ids):
                    c.execute(f"UPDATE rm_orders SET settled = 1 WHERE journal = ? AND order_id IN ({_marks(len(keys))})",
                              [journal, *keys])
            c.insert("rm_counts", "metric, label, n", [(m, lbl, n) for (m, lbl), n in self.counts.items()],
                     " ON CONFLICT (metric, label) DO UPDATE SET n = rm_counts.n + excluded.n")
            c.insert("rm_counts", "metric, label, n", [("next", label, n) for label, n in self.next.items()],
                     " ON CONFLICT (metric, label) DO UPDATE SET n = excluded.n")
        return new_position
