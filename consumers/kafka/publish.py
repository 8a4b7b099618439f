"""Publish JSONL events to Kafka with the topics and keys of SPEC §1.

Clicks, orders and refunds go to the events topic keyed by ``buyer_id``; shares
to the shares topic keyed by ``promoter_id``. Lines that are not JSON objects
(upstream garbage, for testing the dead-letter path) go to the events topic
without a key. Sends are idempotent and acknowledged by all replicas. The
dead-letter topics of both (``<topic>.dlq``, one partition) are created too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from kafka import KafkaProducer

from consumers.kafka.topics import DEFAULT_PARTITIONS, DEFAULT_SHARES_TOPIC, DEFAULT_TOPIC, dlq_topic, ensure_topics
from schemas.peek import route_key


@dataclass
class PublishCounts:
    events: int = 0
    shares: int = 0
    unkeyed: int = 0  # events without a buyer_id (garbage): the broker picks their partition


def producer(bootstrap: str) -> KafkaProducer:
    """A producer for bulk publishing: large batches, every send acknowledged by all replicas."""
    return KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=10,
        batch_size=512 * 1024,
        max_request_size=8 * 1024 * 1024,
        client_id="commission-ledger-publish",
    )


def publish(
    lines: Iterable[bytes],
    bootstrap: str,
    *,
    topic: str = DEFAULT_TOPIC,
    shares_topic: str = DEFAULT_SHARES_TOPIC,
    partitions: int = DEFAULT_PARTITIONS,
) -> PublishCounts:
    """Publish every line; returns once all sends are acknowledged."""
    ensure_topics(bootstrap, {topic: partitions, shares_topic: partitions, dlq_topic(topic): 1, dlq_topic(shares_topic): 1})
    counts = PublishCounts()
    sender = producer(bootstrap)
    try:
        for raw in lines:
            is_share, key = route_key(raw)
            sender.send(shares_topic if is_share else topic, value=raw, key=key)
            if is_share:
                counts.shares += 1
            else:
                counts.events += 1
                counts.unkeyed += key is None
        sender.flush()
    finally:
        sender.close()
    return counts
