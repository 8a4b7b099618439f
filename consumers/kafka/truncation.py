"""A stored position outside the log (issue 18): never skipped silently.

The consumer seeks to the positions stored with the ledger. When the broker
answers that such a position is out of range — the topic was re-created, an
unclean leader election or a broker that lost its storage truncated the log,
or retention deleted records before they were consumed — the clients run
with ``auto_offset_reset="none"``, so the answer reaches us as
``OffsetOutOfRangeError`` instead of a silent jump (a broker that answers
with no records instead, as Tansu does, is caught by the consumer comparing
its positions with the high-water mark). What then happens is the
operator's choice (``consume --on-truncated-log``):

- ``stop`` (the default): that partition is paused, with one line naming the
  topic, partition, stored position and the log's range, and the metric
  ``ledger_consumer_truncated_logs_total{topic,partition,action}``. The other
  partitions go on; ``consume`` exits 1 when it ends.
- ``earliest`` / ``latest``: the operator accepts the loss; the partition
  continues from the log's first / next offset, with the same line (saying
  what was skipped) and metric. The stored position moves with the next batch.
  Only forward: a log that now ends below the stored position (a re-created
  topic) stops the partition whatever the option, since the positions stored
  with the ledger (eventsourcing tracking rows) only increase.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

from kafka import KafkaConsumer, TopicPartition

log = logging.getLogger("commission_ledger.consume")

POLICIES = ("stop", "earliest", "latest")

Reposition = Callable[[TopicPartition, int], None]  # the tasks' positions move to this offset
Observe = Callable[[str, int, str], None]  # (topic, partition, action) → the metric


@dataclass
class TruncatedLogs:
    """What to do with an out-of-range position, and the partitions stopped so far."""

    policy: str = "stop"
    stopped: set[tuple[str, int]] = field(default_factory=set)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"on_truncated_log must be one of {', '.join(POLICIES)}: {self.policy!r}")

    def handle(self, consumer: KafkaConsumer, positions: dict, reposition: Reposition,
               observe: Observe | None = None) -> None:
        """``positions``: what ``OffsetOutOfRangeError`` carries, {TopicPartition: fetch offset}."""
        for tp, offset in sorted(positions.items()):
            low, high = log_range(consumer, tp)
            where = (f"topic {tp.topic} partition {tp.partition}: stored position {offset} is outside the log's range "
                     f"[{_text(low)}, {_text(high)})")
            to = None if self.policy == "stop" else (low if self.policy == "earliest" else high)
            if to is None or to < offset:
                consumer.pause(tp)
                self.stopped.add((tp.topic, tp.partition))
                if to is None:
                    log.error("%s: partition stopped, nothing skipped (the log was truncated or re-created; "
                              "`consume --on-truncated-log earliest|latest` accepts the loss)", where)
                else:
                    log.error("%s: partition stopped: offset %d (--on-truncated-log %s) lies below the stored position, "
                              "and the positions stored with the ledger only move forward (a re-created topic is "
                              "consumed under a new name)", where, to, self.policy)
                action = "stop"
            else:
                log.error("%s: continuing from offset %d (--on-truncated-log %s); the records between are not consumed",
                          where, to, self.policy)
                reposition(tp, to)
                action = self.policy
            if observe is not None:
                observe(tp.topic, tp.partition, action)


def log_range(consumer: KafkaConsumer, tp: TopicPartition) -> tuple[int | None, int | None]:
    """The log's first offset and next offset (the high-water mark of the
    last fetch where known: Tansu's ListOffsets answers the last batch's base
    offset + 1), None where the broker did not say."""
    try:
        low = consumer.beginning_offsets([tp], timeout_ms=5_000).get(tp)
        high = consumer.highwater(tp)
        if high is None:
            high = consumer.end_offsets([tp], timeout_ms=5_000).get(tp)
    except Exception as exc:  # noqa: BLE001 - the line is written anyway, without the range
        log.warning("topic %s partition %d: the log's range is unknown (%s)", tp.topic, tp.partition, exc)
        return None, None
    return low, high


def _text(offset: int | None) -> str:
    return "?" if offset is None else str(offset)
