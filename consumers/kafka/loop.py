"""The long-running Kafka consumer: exactly-once effect over at-least-once delivery.

One iteration = one batch per task (see ``tasks``): apply in memory, copy its
dead letters to ``<topic>.dlq`` of the topic each came from (see ``dlq``: at least once, within a budget
of a few seconds, never an error), then write one segment together with
``Tracking`` rows for every partition position it advanced (the events
partition and the shares partitions), in one transaction — whatever became of
the copies. On (re)assignment a task opens its journal (O(1)) and seeks to the
stored positions; Kafka's committed offsets are written afterwards for lag
monitoring only.

One thread: polling and reading the records happen in the apply loop. A
fetcher thread handing polled batches to it through a bounded queue was
measured (300k events, 3 rounds): the same CPU per event and no steadier wall
time — the record reading is Python and holds the GIL, so it only overlaps
the SQLite commit and the network waits, which are small (see issue 13).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

from kafka import TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import KafkaError, OffsetOutOfRangeError

from consumers.kafka.clients import BrokerWatch, Clients, connect, wait_for_partitions
from consumers.kafka.dlq import CopiedShares, CopyPolicy, CopyReport, DeadLetterSink, DeadLetterTopic
from consumers.kafka.metrics import ConsumerMetrics
from consumers.kafka.shares import SharesFeed
from consumers.kafka.tasks import Batch, Task, Tasks
from consumers.kafka.truncation import TruncatedLogs
from consumers.kafka.topics import DEFAULT_SHARES_TOPIC, DEFAULT_TOPIC, dlq_topic
from ledger.outcomes import IngestCounts
from ledger.books import Books
from ledger.config import Rules
from ledger.limits import DEFAULT_LIMITS, Limits
from ledger.records import DeadLetter
from ledger.store import ConcurrentWriteError, Store

log = logging.getLogger("commission_ledger.consume")

# Default messages per poll (and per task batch): bounds memory and latency.
# Measured (300k events, Tansu, events per CPU-second): 2 000 is ~5% worse;
# 10 000, 20 000 and 4 MiB partition fetches are within the noise of 5 000.
MAX_POLL_RECORDS = 5_000
STATUS_EVERY_S = 5.0
BROKER_CHECK_EVERY_S = 2.0  # while idle
BEYOND_LOG_CONFIRM_S = 1.0  # a position above the high-water mark this long is out of range
POLL_ERROR_PAUSE_S = 0.5  # after a poll that failed (logged once a minute per kind of error)


@dataclass
class ConsumeStats:
    messages: int = 0
    counts: IngestCounts = field(default_factory=IngestCounts)
    batches: int = 0
    conflicts: int = 0
    dlq_copies: int = 0  # dead letters copied to <topic>.dlq (events) and <shares-topic>.dlq
    dlq_failures: Counter = field(default_factory=Counter)  # copies given up on, by reason
    poll_errors: Counter = field(default_factory=Counter)  # polls that raised, by error class
    stopped: set = field(default_factory=set)  # (topic, partition) stopped on a truncated log


class LedgerConsumer:
    """This process's events partitions (one task each) and the whole shares
    topic, applied to the store; one per process, run() once."""

    def __init__(
        self,
        store: Store,
        bootstrap: str,
        *,
        topic: str = DEFAULT_TOPIC,
        shares_topic: str = DEFAULT_SHARES_TOPIC,
        group: str | None = None,
        rules: Rules | None = None,
        client_options: dict | None = None,
        status: Callable[[str], None] | None = None,
        on_batch: Callable[[dict], None] | None = None,
        max_poll_records: int = MAX_POLL_RECORDS,
        member: tuple[int, int] | None = None,
        limits: Limits = DEFAULT_LIMITS,
        dlq_policy: CopyPolicy = CopyPolicy(),
        dlq_producer_options: dict | None = None,
        on_truncated_log: str = "stop",
    ) -> None:
        """``member=(i, n)`` without a group: take the events partitions p with
        p % n == i (a static split among n processes; see ``consume --workers``).
        ``dlq_policy``: the budget of a batch's dead-letter copies;
        ``dlq_producer_options``: settings of the dead-letter producer (e.g.
        security), over those ``dlq.producer_config`` chooses."""
        if max_poll_records < 1:
            raise ValueError(f"max_poll_records must be ≥ 1: {max_poll_records}")
        if member is not None and not (group is None and 0 <= member[0] < member[1]):
            raise ValueError(f"member (i, n) needs 0 ≤ i < n and no group: {member}, group {group!r}")
        self.member = member
        self.store = store
        self.max_poll_records = max_poll_records
        self.books = Books(store, rules, limits)
        self.bootstrap = bootstrap
        self.topic = topic
        self.shares_topic = shares_topic
        self.group = group
        self.client_options = client_options or {}
        self.dlq_policy = dlq_policy
        self.dlq_producer_options = dlq_producer_options or {}
        self.status = status
        self.on_batch = on_batch  # instrumentation hook (tests, metrics)
        self.metrics: ConsumerMetrics | None = None  # when exposed (--metrics-port)
        self.stats = ConsumeStats()
        self.stopping = False
        # Set by run() once connected:
        self.clients: Clients | None = None
        self.shares: SharesFeed | None = None
        self.tasks: Tasks | None = None
        self.dlq: DeadLetterSink | None = None
        self.copied_shares = CopiedShares(shares_topic)
        self.truncated = TruncatedLogs(on_truncated_log, self.stats.stopped)
        self._poll_errors_logged: dict[str, float] = {}
        self.sleep: Callable[[float], None] = time.sleep  # the pause after a failed poll (the simulator's clock)
        self._beyond_seen: dict[TopicPartition, tuple[int, float]] = {}  # position above the high-water mark, since

    def stop(self) -> None:
        self.stopping = True

    def run(self, *, until_idle_s: float | None = None, max_messages: int | None = None) -> ConsumeStats:
        """Consume until stopped (SIGTERM/SIGINT), idle for ``until_idle_s``, or
        ``max_messages`` consumed; the batch in hand is always finished."""
        stop_on_signals(self.stop)
        clients = connect(self.bootstrap, group=self.group, max_poll_records=self.max_poll_records,
                          options=self.client_options, stopping=lambda: self.stopping,
                          dlq_policy=self.dlq_policy, producer_options=self.dlq_producer_options)
        if clients is None or self.stopping:
            if clients is not None:
                clients.close()
            return self.stats
        self.clients = clients
        self.shares = SharesFeed(clients.shares, self.shares_topic, self.max_poll_records)
        self.tasks = Tasks(self.books, clients.events, self.topic, self.shares)
        self.dlq = DeadLetterTopic(clients.producer, dlq_topic(self.topic), self.dlq_policy,
                                   routes={self.shares_topic: dlq_topic(self.shares_topic)})
        try:
            self.dlq.expect(set(clients.events.topics()))
        except KafkaError as exc:  # the metadata will come; the copies find out for themselves
            log.info("dead-letter topics not checked at start: %s", exc)
        try:
            with young_garbage_collected_rarely():
                self._assign()
                self._loop(until_idle_s, max_messages)
        finally:
            if self.status is not None:
                self.status(self._status_line(None))
            clients.close()
        return self.stats

    def _assign(self) -> None:
        """In a group the coordinator assigns (tasks open in its callback);
        otherwise take every partition, or this member's share of them."""
        if self.group is not None:
            self.clients.events.subscribe([self.topic], listener=self.tasks.rebalance_listener())
            return
        partitions = wait_for_partitions(self.clients.events, self.topic, lambda: self.stopping)
        if self.member is not None:
            i, n = self.member
            partitions = [p for p in partitions if p % n == i]
            log.info("member %d/%d: partitions %s", i, n, partitions)
            if not partitions:
                log.warning("member %d/%d: no partitions of %s to consume; exiting", i, n, self.topic)
                self.stopping = True
                return
        self.tasks.assign(partitions)

    def _loop(self, until_idle_s: float | None, max_messages: int | None) -> None:
        broker = BrokerWatch(self.bootstrap)
        started = last_message = last_status = last_check = time.monotonic()
        known_share_partitions = self.shares.partitions()
        while not self.stopping:
            if self.shares.partitions() != known_share_partitions:  # the shares topic grew
                known_share_partitions = self.shares.partitions()
                self.shares.rewind(self.tasks.shares_needed)
            got = self.step(200)
            if got is None:
                continue
            now = time.monotonic()
            if got:
                last_message = now
                self.stats.messages += got
            elif now - last_check >= BROKER_CHECK_EVERY_S:
                last_check = now
                broker.check()
            self._check_beyond_log(now)
            if self.status is not None and now - last_status >= STATUS_EVERY_S:
                last_status = now
                self.status(self._status_line(now - started))
            if not self.tasks.by_partition:
                last_message = now  # idle time counts from the first assignment
            if until_idle_s is not None and now - last_message >= until_idle_s:
                break
            if max_messages is not None and self.stats.messages >= max_messages:
                break

    def step(self, wait_ms: int) -> int | None:
        """One round: poll the shares and the events (waiting up to ``wait_ms``
        when no share came), apply and commit a batch per task; the messages
        polled, None when the poll failed (handled: see below). The seeded
        fault simulator (devkit.sim) drives the consumer through this."""
        try:
            got = self.shares.poll()
            polled = self.clients.events.poll(timeout_ms=wait_ms if not got else 0, max_records=self.max_poll_records)
        except OffsetOutOfRangeError as exc:
            self._out_of_range(exc)
            return None
        except KafkaError as exc:  # whatever else the fetcher raises: logged and retried, never a crash
            self._poll_failed(exc)
            return None
        events = {tp.partition: msgs for tp, msgs in polled.items()}
        got += sum(len(m) for m in events.values())
        self._process(events)
        # A poll that times out inside kafka-python leaves an exception whose
        # traceback refers, through its frames' callers, to this frame, in a
        # cycle that lives until the fetch it waited on completes; the ledger
        # freezes the heap after each commit (gc.freeze). This frame must not
        # keep the step's records then (a 1M consume kept 400 MB of them).
        del polled, events
        return got

    def _out_of_range(self, exc: OffsetOutOfRangeError) -> None:
        positions = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
        for tp, offset in positions.items():
            consumer = self.clients.shares if tp.topic == self.shares_topic else self.clients.events
            observe = self.metrics.observe_truncated if self.metrics is not None else None
            self.truncated.handle(consumer, {tp: offset}, self._reposition, observe)
            if tp.topic == self.shares_topic and (tp.topic, tp.partition) in self.stats.stopped:
                self.shares.stopped.add(tp.partition)

    def _check_beyond_log(self, now: float) -> None:
        """A broker that answers a fetch past the log's end with no records
        instead of OFFSET_OUT_OF_RANGE (Tansu does) still reports the
        high-water mark: a position above it for ``BEYOND_LOG_CONFIRM_S`` (the
        mark of a fetch made before a rebalance may be stale for a moment) is
        out of range."""
        beyond: dict[TopicPartition, int] = {}
        assigned = set(self.clients.events.assignment()) | set(self.shares.consumer.assignment())
        for partition, task in self.tasks.by_partition.items():
            tp = TopicPartition(self.topic, partition)
            high = self.clients.events.highwater(tp) if tp in assigned else None
            if (self.topic, partition) not in self.stats.stopped and high is not None and task.events_next > high:
                beyond[tp] = task.events_next
        for sp in self.shares.partitions():
            tp = TopicPartition(self.shares_topic, sp)
            need = self.tasks.shares_needed(sp)
            high = self.shares.consumer.highwater(tp) if tp in assigned else None
            if (self.shares_topic, sp) not in self.stats.stopped and need is not None and high is not None and need > high:
                beyond[tp] = need
        seen = {tp: (offset, self._beyond_seen[tp][1] if self._beyond_seen.get(tp, (None,))[0] == offset else now)
                for tp, offset in beyond.items()}
        self._beyond_seen = seen
        confirmed = {tp: offset for tp, (offset, since) in seen.items() if now - since >= BEYOND_LOG_CONFIRM_S}
        if confirmed:
            self._out_of_range(OffsetOutOfRangeError(confirmed))

    def _reposition(self, tp: TopicPartition, offset: int) -> None:
        """Move every task's position in ``tp`` to ``offset`` (a truncated log the operator accepts)."""
        if tp.topic == self.shares_topic:
            for task in self.tasks.by_partition.values():
                task.next_offsets[task.shares_key(tp.partition)] = offset
            self.shares.buffer[tp.partition] = []
            self.shares.consumer.seek(tp, offset)
            return
        task = self.tasks.by_partition.get(tp.partition)
        if task is not None:
            task.next_offsets[task.events_key] = offset
        self.clients.events.seek(tp, offset)

    def _poll_failed(self, exc: KafkaError) -> None:
        name = type(exc).__name__
        self.stats.poll_errors[name] += 1
        now = time.monotonic()
        if now - self._poll_errors_logged.get(name, -60.0) >= 60.0:
            self._poll_errors_logged[name] = now
            log.warning("poll failed (%s, %d so far); retrying in %.1fs: %s", name, self.stats.poll_errors[name],
                        POLL_ERROR_PAUSE_S, exc)
        self.sleep(POLL_ERROR_PAUSE_S)

    def _process(self, events: dict[int, list[ConsumerRecord]]) -> None:
        for partition in sorted(self.tasks.by_partition):
            task = self.tasks.by_partition.get(partition)
            if task is None:
                continue
            batch = task.batch(events.get(partition, ()), self.shares)
            if batch.items:
                self._commit(task, batch)
        self.shares.trim(self.tasks.shares_needed)

    def _commit(self, task: Task, batch: Batch) -> None:
        started = time.perf_counter()
        task.ledger.catch_up()  # e.g. a settle written by a command
        records, counts, letters = task.ledger.apply(batch.items)
        self._copy_dead_letters(batch, letters)  # never raises; bounded by the policy's budget
        try:
            task.ledger.commit(records, batch.trackings())
        except ConcurrentWriteError as exc:
            self.stats.conflicts += 1
            log.warning("partition %d: %s; reopening from the store", task.partition, exc)
            self.tasks.open(task.partition)
            return
        task.advance(batch)
        self.stats.counts.merge(counts)
        self.stats.batches += 1
        if self.metrics is not None:
            self.metrics.observe_batch(time.perf_counter() - started, counts)
            self.metrics.observe_position(self.topic, task.partition, task.events_next, self.tasks.lag(task))
        if self.group is not None:
            self.clients.events.commit_async()  # for lag monitoring only
        if self.on_batch is not None:
            self.on_batch({"partition": task.partition, "events": len(batch.items), "seconds": time.perf_counter() - started})

    def _copy_dead_letters(self, batch: Batch, letters: list[DeadLetter]) -> CopyReport | None:
        """The copies to ``<topic>.dlq`` and ``<shares-topic>.dlq``, before the commit (at least once); a
        copy given up on is logged by the sink and counted here."""
        fresh = self.copied_shares.fresh(letters)
        report = self.dlq.write(fresh) if fresh else None
        self.copied_shares.copied({key.partition: n for key, n in batch.advances.items() if key.topic == self.shares_topic})
        if report is not None:
            self.stats.dlq_copies += report.sent
            self.stats.dlq_failures.update(f.reason for f in report.failures)
            if self.metrics is not None:
                self.metrics.observe_dlq(report)
        return report

    def _status_line(self, elapsed_s: float | None) -> str:
        tasks = sorted(self.tasks.by_partition.items()) if self.tasks is not None else []
        positions = {p: t.events_next for p, t in tasks}
        lag = sum(self.tasks.lag(t) or 0 for _, t in tasks)
        rate = f" {self.stats.messages / elapsed_s:,.0f} msg/s" if elapsed_s else ""
        c = self.stats.counts
        failed = sum(self.stats.dlq_failures.values())
        dlq = f" dlq_copies_failed={failed}" if failed else ""
        return (f"[consume] partitions {sorted(positions)} positions {positions} lag {lag}{rate} "
                f"accepted={c.accepted} duplicates={c.duplicates} parked={c.parked} dead_letters={c.dead_letters}{dlq}")


@contextmanager
def young_garbage_collected_rarely() -> Iterator[None]:
    """The ledger state is acyclic and frozen out of the collector after each
    commit; collect young garbage rarely instead of every 700 allocations."""
    thresholds = gc.get_threshold()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)


def stop_on_signals(stop: Callable[[], None]) -> None:
    """SIGTERM/SIGINT finish the batch in hand, then return from ``run``."""
    def handler(signum, frame):
        log.info("signal %s: finishing the batch in hand, then exiting", signum)
        stop()

    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            signal.signal(sig, handler)
        except ValueError:  # not the main thread (embedded use)
            pass


def consume_main(store_url: str, bootstrap: str, **kwargs) -> ConsumeStats:
    """Entry point used by the CLI; the dead-letter copy budget from
    ``LEDGER_DLQ_BUDGET_S`` unless given."""
    kwargs.setdefault("dlq_policy", CopyPolicy.from_environ(os.environ))
    until_idle_s = kwargs.pop("until_idle_s", None)
    max_messages = kwargs.pop("max_messages", None)
    metrics_port = kwargs.pop("metrics_port", None)
    member = kwargs.get("member")
    prefix = f"[member {member[0]}/{member[1]}] " if member else ""
    consumer = LedgerConsumer(Store(store_url), bootstrap, status=lambda line: print(prefix + line, file=sys.stderr, flush=True), **kwargs)
    if metrics_port:
        consumer.metrics = ConsumerMetrics()
        consumer.metrics.serve(metrics_port)
        log.info("metrics on http://127.0.0.1:%d/metrics", metrics_port)
    return consumer.run(until_idle_s=until_idle_s, max_messages=max_messages)
