"""The topics of SPEC §1: their default names, the dead-letter topic's name,
and creating missing ones (publishing and tests create them; the consumer
only waits for them)."""

from __future__ import annotations

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

DEFAULT_TOPIC = "commission-events"
DEFAULT_SHARES_TOPIC = "commission-shares"
DEFAULT_PARTITIONS = 4


def dlq_topic(topic: str) -> str:
    """The dead-letter topic of an events or shares topic (SPEC §9)."""
    return f"{topic}.dlq"


def ensure_topics(bootstrap: str, topics: dict[str, int]) -> None:
    """Create missing topics with the given partition counts."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="commission-ledger-admin")
    try:
        existing = set(admin.list_topics())
        missing = [NewTopic(name, n, 1) for name, n in topics.items() if name not in existing]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # created meanwhile by another publisher
    finally:
        admin.close()
