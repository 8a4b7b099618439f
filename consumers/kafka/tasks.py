"""Tasks: one per events partition this process consumes (as in Kafka Streams).

Task p owns the journal ``kafka:<topic>:<p>`` (the buyers of partition p) and
the positions that journal has stored: in partition p, and in every shares
partition. Opening a task opens its journal (O(1): its state row and chain head) and seeks the consumers to those
positions; that is all a (re)assignment needs, since nothing else is trusted.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass
from typing import Iterable

from eventsourcing.persistence import Tracking
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from consumers.kafka.positions import PositionKey, journal_name, stored_positions
from consumers.kafka.shares import SharesFeed
from ledger.app import Ledger
from ledger.books import Books
from ledger.records import Source

log = logging.getLogger("commission_ledger.consume")


@dataclass
class Batch:
    """What one commit applies, and the positions it records with it."""

    items: list[tuple[bytes, Source]]
    advances: dict[PositionKey, int]  # key → next offset

    def trackings(self) -> list[Tracking]:
        return [key.tracking(next_offset) for key, next_offset in self.advances.items()]


@dataclass
class Task:
    """The ledger of one events partition and its stored positions."""

    partition: int
    ledger: Ledger
    events_key: PositionKey
    shares_topic: str
    next_offsets: dict[PositionKey, int]  # 0 where absent: nothing consumed yet

    @property
    def events_next(self) -> int:
        return self.next_offsets.get(self.events_key, 0)

    def shares_next(self, shares_partition: int) -> int:
        return self.next_offsets.get(self.shares_key(shares_partition), 0)

    def shares_key(self, shares_partition: int) -> PositionKey:
        return PositionKey(self.events_key.journal, self.shares_topic, shares_partition)

    def batch(self, messages: Iterable[ConsumerRecord], shares: SharesFeed) -> Batch:
        """The shares this journal has not recorded (first, so clicks find
        them), then the events messages at or after its position."""
        items, shares_advanced = shares.batch_from(self.shares_next)
        advances = {self.shares_key(sp): next_offset for sp, next_offset in shares_advanced.items()}
        first = self.events_next
        fresh = [m for m in messages if m.offset >= first]
        if fresh:
            topic = self.events_key.topic
            items += [(m.value if m.value is not None else b"", Source(topic=topic, partition=self.partition, offset=m.offset))
                      for m in fresh]
            advances[self.events_key] = fresh[-1].offset + 1
        return Batch(items, advances)

    def advance(self, committed: Batch) -> None:
        """The batch is committed: its positions are the stored ones now."""
        self.next_offsets.update(committed.advances)


class Tasks:
    """This process's tasks by events partition: opened on assignment (and
    reopened after a failed commit), dropped on revocation."""

    def __init__(self, books: Books, events: KafkaConsumer, topic: str, shares: SharesFeed) -> None:
        self.books = books
        self.events = events
        self.topic = topic
        self.shares = shares
        self.by_partition: dict[int, Task] = {}

    def open(self, partition: int) -> None:
        """Replay the partition's journal; seek to its stored positions."""
        journal = journal_name(self.topic, partition)
        ledger = self.books.ledger(journal)
        events_key = PositionKey(journal, self.topic, partition)
        keys = [events_key] + [PositionKey(journal, self.shares.topic, sp) for sp in self.shares.partitions()]
        task = Task(partition, ledger, events_key, self.shares.topic, stored_positions(self.books.store, keys))
        dropped = self.by_partition.get(partition)
        self.by_partition[partition] = task
        if dropped is not None:
            del dropped
            collect_dropped()
        self.events.seek(TopicPartition(self.topic, partition), task.events_next)
        self.shares.rewind(self.shares_needed)

    def assign(self, partitions: list[int]) -> None:
        """A static assignment (no group): these partitions, from now on."""
        self.events.assign([TopicPartition(self.topic, p) for p in partitions])
        for p in partitions:
            self.open(p)

    def rebalance_listener(self) -> ConsumerRebalanceListener:
        """For a group: the coordinator decides, tasks follow."""
        return _Rebalance(self)

    def shares_needed(self, shares_partition: int) -> int | None:
        """The lowest next offset any task needs in a shares partition; None without tasks."""
        return min((t.shares_next(shares_partition) for t in self.by_partition.values()), default=None)

    def lag(self, task: Task) -> int | None:
        """Messages between the task's position and the high-water mark, when known."""
        high = self.events.highwater(TopicPartition(self.topic, task.partition))
        return None if high is None else max(0, high - task.events_next)


def collect_dropped() -> None:
    """Free the ledgers of dropped tasks. A ledger is part of a reference
    cycle, and the ledger freezes the heap after each commit
    (``ledger.app._settle_heap``): a dropped one would never be collected —
    its whole cache (up to ``LEDGER_CACHE_MB``) lost at every reopen or
    rebalance (found by the fault simulator, devkit.sim). Unfreeze and collect
    once; the next commit freezes the live state again. Rebalances are rare."""
    gc.unfreeze()
    gc.collect()


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, tasks: Tasks) -> None:
        self.tasks = tasks

    def on_partitions_revoked(self, revoked):
        for tp in revoked:
            self.tasks.by_partition.pop(tp.partition, None)
        if revoked:
            collect_dropped()
            log.info("revoked partitions %s", sorted(tp.partition for tp in revoked))

    def on_partitions_assigned(self, assigned):
        for tp in assigned:
            self.tasks.open(tp.partition)
        if assigned:
            log.info("assigned partitions %s", sorted(tp.partition for tp in assigned))
