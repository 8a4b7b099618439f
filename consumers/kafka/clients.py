"""The consumer's Kafka clients: creating them while the broker may be down,
closing them, and telling an outage apart in the log.

kafka-python reconnects by itself once its clients exist, but creating them
needs a broker, and its own errors for a refused connection are noisy and
slow; a TCP probe answers "is anything listening?" in a millisecond.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass
from typing import Callable

from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError

from consumers.kafka import fastrecords
from consumers.kafka.dlq import CopyPolicy, producer_config

log = logging.getLogger("commission_ledger.consume")

RETRY_MAX_S = 10.0


class Backoff:
    """Doubling waits, capped: for a broker or a topic that is not there yet."""

    def __init__(self, first_s: float, max_s: float = RETRY_MAX_S) -> None:
        if not 0 < first_s <= max_s:
            raise ValueError(f"backoff needs 0 < first ≤ max: {first_s}, {max_s}")
        self.delay_s = first_s
        self.max_s = max_s

    def wait(self) -> None:
        time.sleep(self.delay_s)
        self.delay_s = min(self.delay_s * 2, self.max_s)


def reachable(bootstrap: str) -> bool:
    """Does any bootstrap server accept a TCP connection?"""
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=1.0):
                return True
        except (OSError, ValueError):
            continue
    return False


class BrokerWatch:
    """Logs once per outage, and once on recovery, instead of on every retry."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.up = True

    def check(self) -> None:
        up = reachable(self.bootstrap)
        if not up and self.up:
            log.warning("broker %s unreachable; the client is retrying with backoff, positions are safe in the store", self.bootstrap)
        elif up and not self.up:
            log.info("broker %s reachable again; resuming from the stored positions", self.bootstrap)
        self.up = up


@dataclass
class Clients:
    """One consumer for this process's events partitions, one for every shares
    partition (positions are ours, so no group), one producer for dead letters."""

    events: KafkaConsumer
    shares: KafkaConsumer
    producer: KafkaProducer

    def close(self) -> None:
        close_all([self.events, self.shares, self.producer])


def close_all(clients: list) -> None:
    for client in clients:
        try:
            client.close()
        except Exception:  # noqa: BLE001 - closing a broken client
            pass


def connect(
    bootstrap: str,
    *,
    group: str | None,
    max_poll_records: int,
    options: dict,
    stopping: Callable[[], bool],
    dlq_policy: CopyPolicy = CopyPolicy(),
    producer_options: dict | None = None,
) -> Clients | None:
    """Create the clients, waiting with backoff while the broker is down;
    None when ``stopping()`` turned true first. The dead-letter producer is
    sized for the largest fetch response the consumers accept (see ``dlq``);
    ``producer_options`` override its settings."""
    backoff = Backoff(0.5)
    while not stopping():
        if not reachable(bootstrap):
            log.warning("broker %s unreachable (connection refused); retrying in %.1fs", bootstrap, backoff.delay_s)
            backoff.wait()
            continue
        opened: list = []
        try:
            common = {"bootstrap_servers": bootstrap, "enable_auto_commit": False,
                      # A position outside the log raises instead of jumping: see truncation.
                      "auto_offset_reset": "none",
                      "max_poll_records": max_poll_records, **options}
            events = KafkaConsumer(group_id=group, client_id="commission-ledger-events", **common)
            opened.append(events)
            events.bootstrap(timeout_ms=int(max(backoff.delay_s, 1.0) * 1000))
            shares = KafkaConsumer(group_id=None, client_id="commission-ledger-shares", **common)
            opened.append(shares)
            for consumer in (events, shares):
                if not fastrecords.install(consumer):
                    log.info("kafka-python's own record reader on %s (fastrecords does not fit this version)",
                             consumer.config["client_id"])
            largest_fetch = max(c.config["receive_message_max_bytes"] for c in (events, shares))
            producer = KafkaProducer(bootstrap_servers=bootstrap, client_id="commission-ledger-dlq",
                                     **{**producer_config(dlq_policy, largest_fetch), **(producer_options or {})})
        except KafkaError as exc:
            log.warning("broker %s unreachable (%s); retrying in %.1fs", bootstrap, type(exc).__name__, backoff.delay_s)
            close_all(opened)
            backoff.wait()
            continue
        log.info("connected to %s", bootstrap)
        return Clients(events, shares, producer)
    return None


def wait_for_partitions(client: KafkaConsumer, topic: str, stopping: Callable[[], bool]) -> list[int]:
    """The topic's partitions once it exists; [] when ``stopping()`` turned true first."""
    backoff = Backoff(0.2)
    while not stopping():
        partitions = client.partitions_for_topic(topic)
        if partitions:
            return sorted(partitions)
        log.info("waiting for topic %s to exist", topic)
        backoff.wait()
    return []
