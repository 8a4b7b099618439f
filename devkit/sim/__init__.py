"""A seeded fault simulator for the Kafka consumer (in the spirit of
TigerBeetle's VOPR and FoundationDB's simulation testing).

One seed decides everything: the event stream, how it is cut into record
batches on an in-process fake broker (compressed with any codec, poison
batches with a bad CRC, header keys that are not UTF-8), and, at every I/O
point of the consumer, which fault happens:

- the broker: a poll that fails (timeout, broker gone), a poll that returns
  nothing, a redelivery (the fetch position moved back), a rebalance (a task
  revoked and assigned again);
- the store: a crash before the commit (after the dead-letter copies), a
  crash after it, a commit that fails (the store refuses);
- the dead-letter topic: missing (every copy refused) or timing out.

The real consumer code runs: ``LedgerConsumer.step`` with its tasks, shares
feed, record reader (``fastrecords``, reading the fake broker's batch
bytes), ledger, store and dead-letter sink. A crash drops the consumer with
everything it held in memory; a new one opens the same store. Time is the
scheduler's (no sleeping, no wall clock in any decision).

The invariant after every schedule, against a fault-free run of the same
broker log and a clean file ingest of the same events: the same balances,
the same dead letters (reason, source, bytes), every source applied exactly
once per journal (nothing lost, nothing doubled), every stored position at
the log's end, and every dead letter's copy attempted (sent or counted as
failed). A failing schedule raises ``ScheduleFailed`` naming the seed that
reproduces it: ``python -m devkit.sim --seed N``.
"""

from __future__ import annotations

import gc
import random
import struct
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from kafka import TopicPartition
from kafka.consumer.fetcher import Fetcher
from kafka.errors import KafkaTimeoutError, NodeNotReadyError, UnknownTopicOrPartitionError
from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords
from kafka.record.util import calc_crc32c

from consumers.kafka.clients import Clients
from consumers.kafka.dlq import CopyPolicy, CopyReport, DeadLetterTopic
from consumers.kafka.fastrecords import FastPartitionRecords
from consumers.kafka.loop import LedgerConsumer
from consumers.kafka.shares import SharesFeed
from consumers.kafka.tasks import Tasks
from consumers.kafka.topics import dlq_topic
from devkit.synthetic import generate
from ledger.app import Ledger
from ledger.books import Books
from ledger.records import DeadLettered, Ingested, Source, dead_letters_of
from ledger.store import JournalStore, Store
from schemas.peek import route_key

EVENTS_TOPIC = "sim-events"
SHARES_TOPIC = "sim-shares"
CODECS = (0, 1, 2, 3, 4)  # none, gzip, snappy, lz4, zstd
BASE_TS_MS = 1_767_225_600_000


class Crash(Exception):
    """The process dies here: everything in memory is lost."""


class ScheduleFailed(AssertionError):
    pass


# ----------------------------------------------------------------- the broker log
def build_batch(records: list[tuple[bytes | None, bytes, list]], base_offset: int, codec: int) -> bytes:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=codec, is_transactional=0, producer_id=-1,
                                        producer_epoch=-1, base_sequence=-1, batch_size=1 << 30)
    for delta, (key, value, headers) in enumerate(records):
        builder.append(delta, timestamp=BASE_TS_MS + base_offset + delta, key=key, value=value, headers=headers)
    buf = builder.build()
    struct.pack_into(">q", buf, 0, base_offset)
    return bytes(buf)


def bad_crc(batch: bytes) -> bytes:
    data = bytearray(batch)
    data[-1] ^= 0x5A
    return bytes(data)


def non_utf8_header(batch: bytes, marker: bytes) -> bytes:
    data = bytearray(batch)
    at = bytes(data).index(marker)
    data[at:at + len(marker)] = b"\xff" * len(marker)
    struct.pack_into(">I", data, 17, calc_crc32c(memoryview(data)[21:]))
    return bytes(data)


@dataclass
class PartitionLog:
    batches: list[tuple[int, bytes]] = field(default_factory=list)  # (base offset, bytes)
    end: int = 0  # the next offset

    def append(self, batch_of: Callable[[int], bytes], count: int) -> None:
        self.batches.append((self.end, batch_of(self.end)))
        self.end += count

    def fetch(self, offset: int, max_batches: int) -> bytes:
        """The batches from the one holding ``offset``, as a fetch response carries them."""
        out = [data for base, data in self.batches if base + _count(data) > offset]
        return b"".join(out[:max_batches])


def _count(batch: bytes) -> int:
    return struct.unpack_from(">i", batch, 23)[0] + 1  # last offset delta + 1


@dataclass
class Log:
    """The fake broker's topics: what a seed produced, in record batches."""

    events: list[PartitionLog]
    shares: list[PartitionLog]
    lines: list[bytes]  # every real event, in production order (the file ingest's input)
    poison: int = 0  # poison batches (each a dead letter per journal that reads it)

    def partitions(self, topic: str) -> list[PartitionLog]:
        return self.events if topic == EVENTS_TOPIC else self.shares


def produce(rng: random.Random, events: int, events_partitions: int, shares_partitions: int,
            compressed: bool, poison: bool) -> Log:
    lines = list(generate(events, seed=rng.randrange(1 << 30), malformed_rate=0.03, duplicate_rate=0.05))
    log = Log([PartitionLog() for _ in range(events_partitions)], [PartitionLog() for _ in range(shares_partitions)], lines)
    pending: dict[tuple[str, int], list[tuple[bytes | None, bytes, list]]] = {}

    def flush(topic: str, p: int) -> None:
        records = pending.pop((topic, p), [])
        if not records:
            return
        codec = rng.choice(CODECS) if compressed else 0
        marker = b"sim-h%d" % rng.randrange(1 << 20)
        headers_bad = rng.random() < 0.1 and codec == 0
        if headers_bad:
            records = [(k, v, [(marker.decode(), b"v")]) for k, v, _ in records]
        part = log.partitions(topic)[p]
        part.append(lambda base: non_utf8_header(build_batch(records, base, codec), marker) if headers_bad
                    else build_batch(records, base, codec), len(records))
        if poison and rng.random() < 0.08:  # a poison batch alone, after this one
            junk = [(None, b"poison-%d" % rng.randrange(1 << 30), [])]
            part.append(lambda base: bad_crc(build_batch(junk, base, rng.choice(CODECS) if compressed else 0)), 1)
            log.poison += 1

    for raw in lines:
        is_share, key = route_key(raw)
        topic = SHARES_TOPIC if is_share else EVENTS_TOPIC
        n = shares_partitions if is_share else events_partitions
        p = zlib.crc32(key) % n if key is not None else 0
        pending.setdefault((topic, p), []).append((key, raw, []))
        if rng.random() < 0.3:
            flush(topic, p)
    for topic, p in list(pending):
        flush(topic, p)
    return log


# ----------------------------------------------------------------- fake clients
class Faults:
    """The scheduler: one seeded generator decides each fault at each I/O point."""

    def __init__(self, rng: random.Random, rate: float) -> None:
        self.rng = rng
        self.rate = rate
        self.dlq_missing = False
        self.seen: Counter = Counter()

    def hit(self, kind: str, weight: float = 1.0) -> bool:
        if self.rng.random() < self.rate * weight:
            self.seen[kind] += 1
            return True
        return False


class FakeConsumer:
    """The kafka-python consumer calls the ledger's consumer makes, over the
    fake broker's log; records are read from the batch bytes by the real
    ``FastPartitionRecords``."""

    def __init__(self, log: Log, topics: list[str], faults: Faults | None) -> None:
        self.log = log
        self.topics_ = topics
        self.faults = faults
        self.assigned: list[TopicPartition] = []
        self.positions: dict[TopicPartition, int] = {}
        self.paused: set[TopicPartition] = set()

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(len(self.log.partitions(topic))))

    def topics(self) -> set[str]:
        return set(self.topics_) | {dlq_topic(EVENTS_TOPIC)} | ({dlq_topic(SHARES_TOPIC)} if not (self.faults and self.faults.dlq_missing) else set())

    def assign(self, tps: list[TopicPartition]) -> None:
        self.assigned = list(tps)
        self.positions = {tp: self.positions.get(tp, 0) for tp in tps}

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    def pause(self, *tps: TopicPartition) -> None:
        self.paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused.difference_update(tps)

    def highwater(self, tp: TopicPartition) -> int:
        return self.log.partitions(tp.topic)[tp.partition].end

    def commit_async(self) -> None:
        pass

    def poll(self, timeout_ms: int = 0, max_records: int = 500) -> dict[TopicPartition, list]:
        f = self.faults
        if f is not None:
            if f.hit("poll_timeout", 0.5):
                raise KafkaTimeoutError("simulated: the fetch timed out")
            if f.hit("broker_gone", 0.3):
                raise NodeNotReadyError("simulated: the broker is gone")
            if f.hit("empty_poll"):
                return {}
        out: dict[TopicPartition, list] = {}
        for tp in self.assigned:
            if tp in self.paused:
                continue
            position = self.positions.get(tp, 0)
            if f is not None and position > 0 and f.hit("redelivery"):
                position = f.rng.randrange(0, position)  # delivered again from further back
            part = self.log.partitions(tp.topic)[tp.partition]
            data = part.fetch(position, (f.rng.randint(1, 4) if f is not None else 3))
            if not data:
                continue
            reader = FastPartitionRecords(position, tp, MemoryRecords(data))
            records = reader.take(max_records)
            if records:
                out[tp] = records
                self.positions[tp] = records[-1].offset + 1
            else:
                self.positions[tp] = max(position, reader.next_fetch_offset)
        return out

    def close(self) -> None:
        pass


class _Future:
    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome

    def get(self, timeout: float | None = None) -> Any:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


class FakeProducer:
    """The dead-letter producer: a missing topic refuses every copy; a fault may time one out."""

    def __init__(self, faults: Faults | None, copies: list) -> None:
        self.faults = faults
        self.copies = copies  # (topic, source text) of every acknowledged copy

    def send(self, topic: str, value: bytes, headers: list) -> _Future:
        f = self.faults
        if f is not None and f.dlq_missing and topic == dlq_topic(SHARES_TOPIC):
            return _Future(UnknownTopicOrPartitionError())
        if f is not None and f.hit("dlq_timeout", 0.5):
            return _Future(KafkaTimeoutError("simulated: no acknowledgement"))
        h = dict(headers)
        self.copies.append((topic, f"{h['source.topic'].decode()}/{h['source.partition'].decode()}@{h['source.offset'].decode()}"))
        return _Future("acknowledged")

    def close(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


# ----------------------------------------------------------------- the consumer under faults
class _SimConsumer(LedgerConsumer):
    """The real consumer; crash points where the store and the copies are touched."""

    faults: Faults | None = None
    attempted: set

    def _copy_dead_letters(self, batch, letters):  # type: ignore[no-untyped-def]
        report: CopyReport | None = super()._copy_dead_letters(batch, letters)
        for letter in letters:  # copied, counted as failed, or copied by an earlier batch (a share's)
            self.attempted.add(letter.source.text())
        if self.faults is not None and self.faults.hit("crash_before_commit", 0.5):
            raise Crash("before the commit")
        return report


def _start(store: Store, log: Log, faults: Faults | None, copies: list, attempted: set, clock: Clock,
           max_poll_records: int) -> _SimConsumer:
    consumer = _SimConsumer(store, "sim", topic=EVENTS_TOPIC, shares_topic=SHARES_TOPIC, max_poll_records=max_poll_records,
                            dlq_policy=CopyPolicy(budget_s=1.0))
    consumer.faults = faults
    consumer.attempted = attempted
    consumer.sleep = clock.sleep
    events = FakeConsumer(log, [EVENTS_TOPIC, SHARES_TOPIC], faults)
    shares = FakeConsumer(log, [EVENTS_TOPIC, SHARES_TOPIC], faults)
    producer = FakeProducer(faults, copies)
    consumer.clients = Clients(events, shares, producer)  # type: ignore[arg-type]
    consumer.shares = SharesFeed(shares, SHARES_TOPIC, max_poll_records)  # type: ignore[arg-type]
    consumer.tasks = Tasks(consumer.books, events, EVENTS_TOPIC, consumer.shares)  # type: ignore[arg-type]
    consumer.dlq = DeadLetterTopic(producer, dlq_topic(EVENTS_TOPIC), consumer.dlq_policy,  # type: ignore[arg-type]
                                   routes={SHARES_TOPIC: dlq_topic(SHARES_TOPIC)}, clock=clock, sleep=clock.sleep)
    consumer.dlq.expect(events.topics())
    consumer.tasks.assign(list(range(len(log.events))))
    return consumer


def _positions_done(store: Store, log: Log) -> bool:
    for p, part in enumerate(log.events):
        journal = f"kafka:{EVENTS_TOPIC}:{p}"
        if (store.position(f"{journal}|{EVENTS_TOPIC}|{p}") or 0) != part.end:
            return False
        for sp, spart in enumerate(log.shares):
            if (store.position(f"{journal}|{SHARES_TOPIC}|{sp}") or 0) != spart.end:
                return False
    return True


@dataclass
class Outcome:
    balances: dict
    letters: Counter  # (journal, reason, source, raw)
    sources: dict  # journal → Counter of source texts applied
    faults: Counter
    steps: int
    crashes: int


def run_log(log: Log, faults: Faults | None, clock: Clock, max_poll_records: int, max_steps: int = 5_000) -> Outcome:
    store = Store("memory://")
    copies: list = []
    attempted: set = set()
    consumer = _start(store, log, faults, copies, attempted, clock, max_poll_records)
    steps = crashes = 0
    while not _positions_done(store, log):
        steps += 1
        if steps > max_steps:
            raise ScheduleFailed(f"no progress after {max_steps} steps (faults {dict(faults.seen) if faults else {}})")
        clock.now += 0.2
        if faults is not None and faults.hit("rebalance", 0.5) and consumer.tasks.by_partition:
            p = faults.rng.choice(sorted(consumer.tasks.by_partition))
            consumer.tasks.by_partition.pop(p)  # revoked …
            consumer.tasks.open(p)  # … and assigned again
        try:
            with _commit_faults(faults):
                consumer.step(0)
        except Crash:
            crashes += 1
            consumer = _start(store, log, faults, copies, attempted, clock, max_poll_records)
    books = Books(store)
    letters: Counter = Counter()
    sources: dict[str, Counter] = {}
    for journal, _, record in books.records():
        if isinstance(record, (Ingested, DeadLettered)):
            src = record.source if isinstance(record, Ingested) else record.letter.source
            sources.setdefault(journal, Counter())[src.text()] += 1
        for letter in dead_letters_of(record):
            letters[(journal, letter.reason, letter.source.text(), letter.raw)] += 1
    missing = {src for (_, _, src, _) in letters} - attempted
    if missing:
        raise ScheduleFailed(f"dead letters whose copy was never attempted: {sorted(missing)[:5]}")
    return Outcome(_nonzero(books.balances()), letters, sources, faults.seen if faults else Counter(), steps, crashes)


class _commit_faults:
    """Store faults at the commit: the ledger's commit, wrapped for one step."""

    def __init__(self, faults: Faults | None) -> None:
        self.faults = faults

    def __enter__(self) -> None:
        self.original = Ledger.commit
        faults, original = self.faults, self.original
        if faults is None:
            return

        def commit(ledger: Ledger, records, trackings):  # type: ignore[no-untyped-def]
            if faults.hit("store_refuses", 0.3):
                raise Crash("the store refused the commit")  # nothing written, as a failed transaction
            original(ledger, records, trackings)
            if faults.hit("crash_after_commit", 0.5):
                raise Crash("after the commit")

        Ledger.commit = commit  # type: ignore[method-assign]

    def __exit__(self, *exc: object) -> None:
        Ledger.commit = self.original  # type: ignore[method-assign]


def _nonzero(balances: dict) -> dict:
    return {k: tuple(v) for k, v in sorted(balances.items()) if any(v)}


def file_balances(lines: list[bytes]) -> dict:
    store = Store("memory://")
    ledger = Ledger(JournalStore(store, "main"))
    ledger.ingest((raw, Source(file="ref", line=i)) for i, raw in enumerate(lines, 1))
    return _nonzero(Books(store).balances())


@dataclass
class ScheduleReport:
    seed: int
    events: int
    poison: int
    steps: int
    crashes: int
    faults: Counter


def run_schedule(seed: int, *, events: int | None = None) -> ScheduleReport:
    """One schedule: its log, a fault-free run, a run under faults, the invariant."""
    try:
        return _schedule(seed, events)
    finally:
        # The ledger freezes its heap after each commit (ledger.app._settle_heap): in one process running
        # thousands of schedules, the dropped stores would stay frozen, uncollected, and slow everything.
        gc.unfreeze()
        gc.collect()


def _schedule(seed: int, events: int | None) -> ScheduleReport:
    rng = random.Random(seed)
    n = events if events is not None else rng.randint(20, 90)
    log = produce(rng, n, events_partitions=rng.randint(1, 3), shares_partitions=rng.randint(1, 2),
                  compressed=rng.random() < 0.7, poison=rng.random() < 0.6)
    max_poll = rng.choice((1, 3, 7, 50))
    clean = run_log(log, None, Clock(), max_poll)
    faults = Faults(random.Random(rng.randrange(1 << 30)), rate=rng.choice((0.02, 0.05, 0.1, 0.2)))
    faults.dlq_missing = rng.random() < 0.3
    if faults.dlq_missing:
        faults.seen["dlq_topic_missing"] += 1
    if log.poison:
        faults.seen["poison_batches"] += log.poison
    faulty = run_log(log, faults, Clock(), max_poll)
    expected = file_balances(log.lines)
    problems = []
    if clean.balances != expected:
        problems.append(f"the fault-free run's balances differ from a file ingest: {clean.balances} != {expected}")
    if faulty.balances != expected:
        problems.append(f"balances differ from a file ingest: {faulty.balances} != {expected}")
    if faulty.letters != clean.letters:
        problems.append(f"dead letters differ: extra {sorted((faulty.letters - clean.letters).elements())[:3]}, "
                        f"missing {sorted((clean.letters - faulty.letters).elements())[:3]}")
    for journal in sorted(set(clean.sources) | set(faulty.sources)):
        got, want = faulty.sources.get(journal, Counter()), clean.sources.get(journal, Counter())
        doubled = [s for s, k in got.items() if k > 1]
        if doubled or set(got) != set(want):
            problems.append(f"journal {journal}: doubled {doubled[:3]}, lost {sorted(set(want) - set(got))[:3]}, "
                            f"extra {sorted(set(got) - set(want))[:3]}")
    poison_letters = sum(1 for (_, reason, _, raw) in clean.letters.elements() if reason == "malformed_json" and raw[:8].startswith(b"\x00"))
    if log.poison and not poison_letters:
        problems.append(f"{log.poison} poison batches but no dead letter for any")
    if problems:
        raise ScheduleFailed(f"seed {seed}: " + "; ".join(problems) + f" (reproduce: python -m devkit.sim --seed {seed})")
    return ScheduleReport(seed, len(log.lines), log.poison, faulty.steps, faulty.crashes, faulty.faults)
