"""The dead-letter topic ``<topic>.dlq`` (SPEC §9): a copy of each dead letter
for the upstream teams; the record of truth is the dead letter in the ledger.

A batch's dead letters are written before its commit, so each reaches the
topic at least once. ``DeadLetterSink`` is the seam for a delivery policy (a
wrapper that retries with backoff, counts and gives up); today a failure
surfaces as ``DeadLetterWriteError`` and the consumer retries the batch.
"""

from __future__ import annotations

from typing import Protocol, Sequence

from kafka import KafkaProducer
from kafka.errors import KafkaError

from ledger.records import DeadLetter

DETAIL_MAX_BYTES = 500


class DeadLetterWriteError(Exception):
    """The dead letters could not be written; ``cause`` names the client's error."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class DeadLetterSink(Protocol):
    def write(self, letters: Sequence[DeadLetter]) -> None:
        """Return once every letter is handed over; else raise DeadLetterWriteError."""


def headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    """Why and where from: the value stays the original bytes."""
    src = letter.source
    return [
        ("reason", letter.reason.encode()),
        ("detail", letter.detail.encode()[:DETAIL_MAX_BYTES]),
        ("source.topic", (src.topic or "").encode()),
        ("source.partition", str(src.partition).encode()),
        ("source.offset", str(src.offset).encode()),
    ]


class DeadLetterTopic:
    """Writes dead letters to one Kafka topic with the consumer's producer."""

    def __init__(self, producer: KafkaProducer, topic: str) -> None:
        self.producer = producer
        self.topic = topic

    def write(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        try:
            for letter in letters:
                self.producer.send(self.topic, value=letter.raw, headers=headers(letter))
            self.producer.flush()
        except KafkaError as exc:
            raise DeadLetterWriteError(type(exc).__name__) from exc
