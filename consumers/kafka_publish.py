"""Publish JSONL events to Kafka with the topics and keys of SPEC §1.

Clicks, orders and refunds go to the events topic keyed by ``buyer_id``; shares
to the shares topic keyed by ``promoter_id``. Lines that are not JSON objects
(upstream garbage, for testing the dead-letter path) go to the events topic
without a key. Sends are idempotent and acknowledged by all replicas.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable

import orjson

DEFAULT_TOPIC = "commission-events"
DEFAULT_SHARES_TOPIC = "commission-shares"
DEFAULT_PARTITIONS = 4

log = logging.getLogger("commission_ledger.publish")


@dataclass
class PublishCounts:
    events: int = 0
    shares: int = 0
    unkeyed: int = 0


def route(raw: bytes, topic: str, shares_topic: str) -> tuple[str, bytes | None]:
    """The topic and key for one raw event."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return topic, None
    if not isinstance(obj, dict):
        return topic, None
    if obj.get("type") == "share":
        key = obj.get("promoter_id")
        return shares_topic, key.encode() if isinstance(key, str) else None
    key = obj.get("buyer_id")
    return topic, key.encode() if isinstance(key, str) else None


def ensure_topics(bootstrap: str, topics: dict[str, int]) -> None:
    """Create missing topics with the given partition counts."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="commission-ledger-admin")
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(name, n, 1) for name, n in topics.items() if name not in existing]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


def producer(bootstrap: str):
    from kafka import KafkaProducer

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
    ensure_topics(bootstrap, {topic: partitions, shares_topic: partitions, f"{topic}.dlq": 1})
    counts = PublishCounts()
    sender = producer(bootstrap)
    try:
        for raw in lines:
            target, key = route(raw, topic, shares_topic)
            sender.send(target, value=raw, key=key)
            if target == shares_topic:
                counts.shares += 1
            else:
                counts.events += 1
                counts.unkeyed += key is None
        sender.flush()
    finally:
        sender.close()
    return counts
