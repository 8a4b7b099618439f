"""The long-running Kafka consumer: exactly-once effect over at-least-once delivery.

State is kept per partition of the events topic (a *task*, as in Kafka
Streams): task p owns the journal ``kafka:<topic>:<p>`` with the buyers of that
partition. Every process reads the whole shares topic (the promoter network is
global) and feeds each of its tasks the shares that task has not yet recorded.

One loop iteration = one batch per task: apply in memory, send its dead
letters to ``<topic>.dlq`` (at least once), then write one segment together
with eventsourcing ``Tracking`` rows for every partition position it advanced
(the events partition and the shares partitions), in one transaction. On
(re)assignment a task replays its journal and seeks to the stored positions;
Kafka's committed offsets are written afterwards for lag monitoring only.
"""

from __future__ import annotations

import gc
import logging
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import orjson
from eventsourcing.persistence import Tracking

from consumers.kafka_publish import DEFAULT_SHARES_TOPIC, DEFAULT_TOPIC
from consumers.metrics import ConsumerMetrics
from ledger.app import IngestCounts, Ledger
from ledger.books import Books
from ledger.config import Rules
from ledger.limits import DEFAULT_LIMITS, Limits
from ledger.records import DeadLetter, Source
from ledger.store import ConcurrentWriteError, Store
from schemas.timestamps import parse_timestamp_us

log = logging.getLogger("commission_ledger.consume")

MAX_POLL_RECORDS = 5_000  # default messages per poll (and per task batch): bounds memory and latency
MAX_SHARES_BUFFER = 200_000  # shares held for tasks that are behind
RETRY_MAX_S = 10.0
STATUS_EVERY_S = 5.0


def journal_name(topic: str, partition: int) -> str:
    return f"kafka:{topic}:{partition}"


def tracking_name(journal: str, topic: str, partition: int) -> str:
    return f"{journal}|{topic}|{partition}"


@dataclass
class Task:
    """The ledger of one events partition and its stored positions."""

    partition: int
    ledger: Ledger
    events_next: int
    shares_next: dict[int, int] = field(default_factory=dict)


@dataclass
class ConsumeStats:
    messages: int = 0
    counts: IngestCounts = field(default_factory=IngestCounts)
    batches: int = 0
    conflicts: int = 0


class LedgerConsumer:
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
    ) -> None:
        """``member=(i, n)`` without a group: take the events partitions p with
        p % n == i (a static split among n processes; see ``consume --workers``)."""
        assert max_poll_records >= 1, max_poll_records
        assert member is None or (group is None and 0 <= member[0] < member[1]), member
        self.member = member
        self.store = store
        self.max_poll_records = max_poll_records
        self.books = Books(store, rules, limits)
        self.bootstrap = bootstrap
        self.topic = topic
        self.shares_topic = shares_topic
        self.dlq_topic = f"{topic}.dlq"
        self.group = group
        self.client_options = client_options or {}
        self.status = status
        self.on_batch = on_batch  # instrumentation hook (tests, metrics)
        self.metrics: ConsumerMetrics | None = None  # when exposed (--metrics-port)
        self.tasks: dict[int, Task] = {}
        self.shares: dict[int, list[tuple[int, bytes]]] = {}  # partition → [(offset, raw)]
        self.stats = ConsumeStats()
        self.stopping = False
        self._events = None
        self._shares = None
        self._producer = None
        self._broker_up = True

    # ------------------------------------------------------------ clients
    def _connect(self) -> None:
        """Create the Kafka clients, waiting with backoff while the broker is down."""
        from kafka import KafkaConsumer, KafkaProducer
        from kafka.errors import KafkaError

        delay = 0.5
        while not self.stopping:
            if not self._reachable():
                log.warning("broker %s unreachable (connection refused); retrying in %.1fs", self.bootstrap, delay)
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            try:
                common = {"bootstrap_servers": self.bootstrap, **self.client_options}
                self._events = KafkaConsumer(
                    group_id=self.group, enable_auto_commit=False, auto_offset_reset="earliest",
                    max_poll_records=self.max_poll_records, client_id="commission-ledger-events", **common,
                )
                self._events.bootstrap(timeout_ms=int(max(delay, 1.0) * 1000))
                self._shares = KafkaConsumer(
                    group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                    max_poll_records=self.max_poll_records, client_id="commission-ledger-shares", **common,
                )
                self._producer = KafkaProducer(
                    bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True, linger_ms=5,
                    client_id="commission-ledger-dlq",
                )
                log.info("connected to %s", self.bootstrap)
                return
            except KafkaError as exc:
                log.warning("broker %s unreachable (%s); retrying in %.1fs", self.bootstrap, type(exc).__name__, delay)
                self._close_clients()
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    def _reachable(self) -> bool:
        """Does any bootstrap server accept a TCP connection?"""
        for server in self.bootstrap.split(","):
            host, _, port = server.strip().rpartition(":")
            try:
                with socket.create_connection((host or "127.0.0.1", int(port)), timeout=1.0):
                    return True
            except (OSError, ValueError):
                continue
        return False

    def _check_broker(self) -> None:
        """Log (once per outage) when the broker stops answering; the Kafka
        clients reconnect by themselves with backoff."""
        reachable = self._reachable()
        if not reachable and self._broker_up:
            log.warning("broker %s unreachable; the client is retrying with backoff, positions are safe in the store", self.bootstrap)
        elif reachable and not self._broker_up:
            log.info("broker %s reachable again; resuming from the stored positions", self.bootstrap)
        self._broker_up = reachable

    def _close_clients(self) -> None:
        for client in (self._events, self._shares, self._producer):
            if client is not None:
                try:
                    client.close()
                except Exception:  # noqa: BLE001 - closing a broken client
                    pass
        self._events = self._shares = self._producer = None

    def _subscribe(self) -> None:
        from kafka import ConsumerRebalanceListener, TopicPartition

        consumer = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked):
                for tp in revoked:
                    consumer.tasks.pop(tp.partition, None)
                if revoked:
                    log.info("revoked partitions %s", sorted(tp.partition for tp in revoked))

            def on_partitions_assigned(self, assigned):
                for tp in assigned:
                    consumer._open_task(tp.partition)
                if assigned:
                    log.info("assigned partitions %s", sorted(tp.partition for tp in assigned))

        if self.group is not None:
            self._events.subscribe([self.topic], listener=Listener())
        else:
            partitions = self._wait_for_partitions(self._events, self.topic)
            if self.member is not None:
                i, n = self.member
                partitions = [p for p in partitions if p % n == i]
                log.info("member %d/%d: partitions %s", i, n, partitions)
                if not partitions:
                    log.warning("member %d/%d: no partitions of %s to consume; exiting", i, n, self.topic)
                    self.stopping = True
                    return
            self._events.assign([TopicPartition(self.topic, p) for p in partitions])
            for p in partitions:
                self._open_task(p)

    def _wait_for_partitions(self, client, topic: str) -> list[int]:
        delay = 0.2
        while not self.stopping:
            partitions = client.partitions_for_topic(topic)
            if partitions:
                return sorted(partitions)
            log.info("waiting for topic %s to exist", topic)
            time.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
        return []

    # -------------------------------------------------------------- tasks
    def _open_task(self, partition: int) -> None:
        """Replay the partition's journal; seek to its stored positions."""
        from kafka import TopicPartition

        name = journal_name(self.topic, partition)
        ledger = self.books.ledger(name)
        events_next = self.store.position(tracking_name(name, self.topic, partition)) or 0
        shares_next = {}
        for sp in self._share_partitions():
            shares_next[sp] = self.store.position(tracking_name(name, self.shares_topic, sp)) or 0
        self.tasks[partition] = Task(partition, ledger, events_next, shares_next)
        self._events.seek(TopicPartition(self.topic, partition), events_next)
        self._rewind_shares()

    def _share_partitions(self) -> list[int]:
        return sorted(self._shares.partitions_for_topic(self.shares_topic) or ())

    def _rewind_shares(self) -> None:
        """Fetch shares from the lowest position any task still needs."""
        from kafka import TopicPartition

        partitions = self._share_partitions()
        if not partitions:
            return
        tps = [TopicPartition(self.shares_topic, p) for p in partitions]
        if set(self._shares.assignment()) != set(tps):
            self._shares.assign(tps)
        for p in partitions:
            need = min((t.shares_next.get(p, 0) for t in self.tasks.values()), default=0)
            buffered = self.shares.get(p, [])
            if not buffered or buffered[0][0] > need:
                self.shares[p] = []
                self._shares.seek(TopicPartition(self.shares_topic, p), need)

    # --------------------------------------------------------------- loop
    def run(self, *, until_idle_s: float | None = None, max_messages: int | None = None) -> ConsumeStats:
        """Consume until stopped (SIGTERM/SIGINT), idle for ``until_idle_s``, or
        ``max_messages`` consumed; the batch in hand is always finished."""
        self._install_signals()
        self._connect()
        if self.stopping:
            return self.stats
        # The ledger state is acyclic and frozen out of the collector after each
        # commit; collect young garbage rarely instead of every 700 allocations.
        thresholds = gc.get_threshold()
        gc.set_threshold(100_000, 50, 100)
        try:
            self._subscribe()
            last_message = time.monotonic()
            last_status = last_check = time.monotonic()
            started = time.monotonic()
            known_share_partitions = self._share_partitions()
            while not self.stopping:
                if self._share_partitions() != known_share_partitions:
                    known_share_partitions = self._share_partitions()
                    for task in self.tasks.values():
                        for sp in known_share_partitions:
                            task.shares_next.setdefault(sp, 0)
                    self._rewind_shares()
                got = self._poll_shares()
                polled = self._events.poll(timeout_ms=200 if not got else 0, max_records=self.max_poll_records)
                events = {tp.partition: msgs for tp, msgs in polled.items()}
                got += sum(len(m) for m in events.values())
                self._process(events)
                now = time.monotonic()
                if got:
                    last_message = now
                    self.stats.messages += got
                elif now - last_check >= 2.0:
                    last_check = now
                    self._check_broker()
                if self.status is not None and now - last_status >= STATUS_EVERY_S:
                    last_status = now
                    self.status(self._status_line(now - started))
                if not self.tasks:
                    last_message = now  # idle time counts from the first assignment
                if until_idle_s is not None and now - last_message >= until_idle_s:
                    break
                if max_messages is not None and self.stats.messages >= max_messages:
                    break
        finally:
            gc.set_threshold(*thresholds)
            if self.status is not None:
                self.status(self._status_line(None))
            self._close_clients()
        return self.stats

    def stop(self) -> None:
        self.stopping = True

    def _install_signals(self) -> None:
        def handler(signum, frame):
            log.info("signal %s: finishing the batch in hand, then exiting", signum)
            self.stop()

        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                signal.signal(sig, handler)
            except ValueError:  # not the main thread (embedded use)
                pass

    def _poll_shares(self) -> int:
        if not self._shares.assignment():
            return 0
        polled = self._shares.poll(timeout_ms=0, max_records=self.max_poll_records)
        n = 0
        for tp, msgs in polled.items():
            buffer = self.shares.setdefault(tp.partition, [])
            for m in msgs:
                if not buffer or m.offset > buffer[-1][0]:
                    buffer.append((m.offset, m.value if m.value is not None else b""))
                    n += 1
        total = sum(len(b) for b in self.shares.values())
        if total > MAX_SHARES_BUFFER:
            self._shares.pause(*self._shares.assignment())
        else:
            self._shares.resume(*self._shares.assignment())
        return n

    def _process(self, events: dict[int, list]) -> None:
        for partition in sorted(self.tasks):
            task = self.tasks.get(partition)
            if task is None:
                continue
            items: list[tuple[bytes, Source]] = []
            trackings: list[Tracking] = []
            name = task.ledger.store.name
            shares: list[tuple[bytes, Source]] = []
            for sp in sorted(self.shares):
                fresh = [(o, raw) for o, raw in self.shares[sp] if o >= task.shares_next.get(sp, 0)]
                if fresh:
                    shares += [(raw, Source(topic=self.shares_topic, partition=sp, offset=o)) for o, raw in fresh]
                    trackings.append(Tracking(tracking_name(name, self.shares_topic, sp), fresh[-1][0] + 1))
            items += sorted(shares, key=_share_order)  # see _share_order
            msgs = [m for m in events.get(partition, ()) if m.offset >= task.events_next]
            if msgs:
                items += [
                    (m.value if m.value is not None else b"", Source(topic=self.topic, partition=partition, offset=m.offset))
                    for m in msgs
                ]
                trackings.append(Tracking(tracking_name(name, self.topic, partition), msgs[-1].offset + 1))
            if not items:
                continue
            self._commit_task(task, items, trackings)
        self._trim_shares()

    def _commit_task(self, task: Task, items: list[tuple[bytes, Source]], trackings: list[Tracking]) -> None:
        started = time.perf_counter()
        task.ledger.catch_up()  # e.g. a settle written by a command
        from kafka.errors import KafkaError

        records, counts, letters = task.ledger.apply(items)
        try:
            self._send_dead_letters(letters)
            task.ledger.commit(records, trackings)
        except KafkaError as exc:
            log.warning("partition %d: dead-letter topic unavailable (%s); batch will be retried", task.partition, type(exc).__name__)
            self._open_task(task.partition)
            time.sleep(0.5)
            return
        except ConcurrentWriteError as exc:
            self.stats.conflicts += 1
            log.warning("partition %d: %s; reopening from the store", task.partition, exc)
            self._open_task(task.partition)
            return
        for t in trackings:
            topic, partition = t.application_name.split("|")[1:]
            if topic == self.topic:
                task.events_next = t.notification_id
            else:
                task.shares_next[int(partition)] = t.notification_id
        self.stats.counts.merge(counts)
        self.stats.batches += 1
        if self.metrics is not None:
            self._observe(task, counts, time.perf_counter() - started)
        if self.group is not None:
            self._events.commit_async()  # for lag monitoring only
        if self.on_batch is not None:
            self.on_batch({"partition": task.partition, "events": len(items), "seconds": time.perf_counter() - started})

    def _observe(self, task: Task, counts: IngestCounts, seconds: float) -> None:
        from kafka import TopicPartition

        m = self.metrics
        m.batch_seconds.observe(seconds)
        for outcome, n in (("accepted", counts.accepted), ("duplicate", counts.duplicates), ("parked", counts.parked)):
            if n:
                m.events.labels(outcome).inc(n)
        for reason, n in counts.reasons.items():
            m.dead_letters.labels(reason).inc(n)
        labels = (self.topic, str(task.partition))
        m.position.labels(*labels).set(task.events_next)
        high = self._events.highwater(TopicPartition(self.topic, task.partition))
        if high is not None:
            m.lag.labels(*labels).set(max(0, high - task.events_next))

    def _send_dead_letters(self, letters: list[DeadLetter]) -> None:
        """Dead letters to ``<topic>.dlq`` before the commit: at least once."""
        if not letters:
            return
        for letter in letters:
            src = letter.source
            headers = [
                ("reason", letter.reason.encode()),
                ("detail", letter.detail.encode()[:500]),
                ("source.topic", (src.topic or "").encode()),
                ("source.partition", str(src.partition).encode()),
                ("source.offset", str(src.offset).encode()),
            ]
            self._producer.send(self.dlq_topic, value=letter.raw, headers=headers)
        self._producer.flush()

    def _trim_shares(self) -> None:
        for sp, buffer in self.shares.items():
            need = min((t.shares_next.get(sp, 0) for t in self.tasks.values()), default=None)
            if need is None:
                continue
            keep = 0
            while keep < len(buffer) and buffer[keep][0] < need:
                keep += 1
            if keep:
                del buffer[:keep]

    def _status_line(self, elapsed_s: float | None) -> str:
        from kafka import TopicPartition

        positions = {p: t.events_next for p, t in sorted(self.tasks.items())}
        lag = 0
        for p, pos in positions.items():
            high = self._events.highwater(TopicPartition(self.topic, p)) if self._events else None
            if high is not None:
                lag += max(0, high - pos)
        rate = f" {self.stats.messages / elapsed_s:,.0f} msg/s" if elapsed_s else ""
        c = self.stats.counts
        return (f"[consume] partitions {sorted(positions)} positions {positions} lag {lag}{rate} "
                f"accepted={c.accepted} duplicates={c.duplicates} parked={c.parked} dead_letters={c.dead_letters}")


def _share_order(item: tuple[bytes, Source]) -> tuple:
    """Feed the shares of one batch in event-time order: shares from different
    partitions interleave in time, and a share that arrives after later-dated
    ones makes the network recompute from its position (the result is the same
    in any order; this keeps it cheap). Unreadable ones keep their place last."""
    raw, source = item
    try:
        obj = orjson.loads(raw)
        instant = parse_timestamp_us(obj["occurred_at"]) if isinstance(obj, dict) and isinstance(obj.get("occurred_at"), str) else None
        event_id = obj.get("event_id") if isinstance(obj, dict) else None
    except (orjson.JSONDecodeError, TypeError, KeyError):
        instant, event_id = None, None
    if instant is None or not isinstance(event_id, str):
        return (1, 0, "", source.partition, source.offset)
    return (0, instant, event_id, source.partition, source.offset)


def consume_main(store_url: str, bootstrap: str, **kwargs) -> ConsumeStats:
    """Entry point used by the CLI."""
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
