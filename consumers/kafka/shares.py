"""The global shares feed: every process reads every shares partition.

The promoter network is global (SPEC §1), so each task needs every share, but
the tasks of one process stand at different positions in the shares topic
(each journal records its own). One buffer per shares partition serves them
all: it is fetched from the lowest position any task still needs, trimmed
below it after each round, and its fetching paused while it is full.
"""

from __future__ import annotations

from typing import Callable

from kafka import KafkaConsumer, TopicPartition

from ledger.records import Source
from schemas.peek import event_time_key

MAX_SHARES_BUFFER = 200_000  # shares held for tasks that are behind

Needed = Callable[[int], "int | None"]  # shares partition → lowest next offset any task needs (None: no task)


class SharesFeed:
    def __init__(self, consumer: KafkaConsumer, topic: str, max_poll_records: int) -> None:
        self.consumer = consumer
        self.topic = topic
        self.max_poll_records = max_poll_records
        self.buffer: dict[int, list[tuple[int, bytes]]] = {}  # partition → [(offset, raw)], offsets increasing
        self.stopped: set[int] = set()  # partitions stopped on a truncated log: never resumed here

    def partitions(self) -> list[int]:
        return sorted(self.consumer.partitions_for_topic(self.topic) or ())

    def rewind(self, needed: Needed) -> None:
        """Fetch again from the lowest position any task needs, where the
        buffer does not reach back that far (a task was opened or reopened)."""
        partitions = self.partitions()
        if not partitions:
            return
        tps = [TopicPartition(self.topic, p) for p in partitions]
        if set(self.consumer.assignment()) != set(tps):
            self.consumer.assign(tps)
        for p in partitions:
            need = needed(p)
            need = 0 if need is None else need
            buffered = self.buffer.get(p, [])
            if not buffered or buffered[0][0] > need:
                self.buffer[p] = []
                self.consumer.seek(TopicPartition(self.topic, p), need)

    def poll(self) -> int:
        """Buffer what the broker has (without waiting); the number of new shares."""
        if not self.consumer.assignment():
            return 0
        polled = self.consumer.poll(timeout_ms=0, max_records=self.max_poll_records)
        n = 0
        for tp, msgs in polled.items():
            buffer = self.buffer.setdefault(tp.partition, [])
            for m in msgs:
                if not buffer or m.offset > buffer[-1][0]:  # a redelivery after a seek is already held
                    buffer.append((m.offset, m.value if m.value is not None else b""))
                    n += 1
        if sum(len(b) for b in self.buffer.values()) > MAX_SHARES_BUFFER:
            self.consumer.pause(*self.consumer.assignment())
        else:
            self.consumer.resume(*[tp for tp in self.consumer.assignment() if tp.partition not in self.stopped])
        return n

    def batch_from(self, start: Callable[[int], int]) -> tuple[list[tuple[bytes, Source]], dict[int, int]]:
        """The buffered shares at or after ``start(partition)``, in event-time
        order, and the next offset of each shares partition they advance."""
        items: list[tuple[bytes, Source]] = []
        advanced: dict[int, int] = {}
        for sp in sorted(self.buffer):
            first = start(sp)
            fresh = [(o, raw) for o, raw in self.buffer[sp] if o >= first]
            if fresh:
                items += [(raw, Source(topic=self.topic, partition=sp, offset=o)) for o, raw in fresh]
                advanced[sp] = fresh[-1][0] + 1
        items.sort(key=event_time_order)
        return items, advanced

    def trim(self, needed: Needed) -> None:
        """Drop what every task has recorded."""
        for sp, buffer in self.buffer.items():
            need = needed(sp)
            if need is None:
                continue
            keep = 0
            while keep < len(buffer) and buffer[keep][0] < need:
                keep += 1
            if keep:
                del buffer[:keep]


def event_time_order(item: tuple[bytes, Source]) -> tuple:
    """Sort key feeding one batch's shares in event-time order: shares from
    different partitions interleave in time, and a share that arrives after
    later-dated ones makes the network recompute from its position (the result
    is the same in any order; this keeps it cheap). Unreadable ones go last, by
    partition and offset."""
    raw, source = item
    key = event_time_key(raw)
    if key is None:
        return (1, 0, "", source.partition, source.offset)
    return (0, key[0], key[1], source.partition, source.offset)
