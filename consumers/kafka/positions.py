"""Kafka positions stored in the ledger's store: exactly-once rests on them.

A journal records, in the same transaction as the segment it wrote, the next
offset of every partition that segment consumed, as an eventsourcing
``Tracking`` row named ``"<journal>|<topic>|<partition>"``. On assignment the
consumer seeks to these, never to Kafka's committed offsets. Existing stores
hold these names: the format must not change.
"""

from __future__ import annotations

from dataclasses import dataclass

from eventsourcing.persistence import Tracking

from ledger.store import Store

SEPARATOR = "|"


def journal_name(topic: str, partition: int) -> str:
    """The journal of one events partition (a task's ledger)."""
    return f"kafka:{topic}:{partition}"


@dataclass(frozen=True)
class PositionKey:
    """Where one journal's position in one topic partition is stored."""

    journal: str
    topic: str
    partition: int

    def __post_init__(self) -> None:
        # Checked, not asserted: a separator inside a part would store a name
        # that reads back as another position.
        if SEPARATOR in self.journal or SEPARATOR in self.topic:
            raise ValueError(f"{SEPARATOR!r} in a journal or topic name: {self.journal!r}, {self.topic!r}")
        if type(self.partition) is not int or self.partition < 0:
            raise ValueError(f"not a partition number: {self.partition!r}")

    @property
    def stored_name(self) -> str:
        return f"{self.journal}{SEPARATOR}{self.topic}{SEPARATOR}{self.partition}"

    @classmethod
    def from_stored_name(cls, name: str) -> PositionKey:
        parts = name.split(SEPARATOR)
        if len(parts) != 3 or not (parts[2].isascii() and parts[2].isdigit()):
            raise ValueError(f"not a stored position name: {name!r}")
        return cls(parts[0], parts[1], int(parts[2]))

    def tracking(self, next_offset: int) -> Tracking:
        """The row that records ``next_offset`` with a commit."""
        return Tracking(self.stored_name, next_offset)


def stored_positions(store: Store, keys: list[PositionKey]) -> dict[PositionKey, int]:
    """The next offset recorded for each key; 0 where nothing was consumed yet."""
    return {key: store.position(key.stored_name) or 0 for key in keys}
