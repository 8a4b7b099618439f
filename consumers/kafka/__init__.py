"""Kafka as a source (the consumer) and a sink (the publisher), SPEC §1 and §9.

Modules, one concept each: ``topics`` (names, creation), ``clients`` (creating
the kafka-python clients while the broker may be down), ``fastrecords``
(reading their fetched record batches faster), ``positions`` (the
offsets stored with the ledger), ``shares`` (the global shares feed),
``tasks`` (one ledger per events partition), ``dlq`` (the dead-letter topic),
``metrics``, ``loop`` (the consumer), ``publish``.
"""

from consumers.kafka.loop import ConsumeStats, LedgerConsumer, consume_main
from consumers.kafka.publish import publish
from consumers.kafka.topics import DEFAULT_SHARES_TOPIC, DEFAULT_TOPIC, ensure_topics

__all__ = [
    "DEFAULT_SHARES_TOPIC",
    "DEFAULT_TOPIC",
    "ConsumeStats",
    "LedgerConsumer",
    "consume_main",
    "ensure_topics",
    "publish",
]
