"""Duplicates (SPEC §8): event ids with the fingerprint of their first content,
and the refund ids claimed (order and share ids live with their orders and
shares)."""

from __future__ import annotations

NEW = 0
SAME = 1  # same event_id, same content: a duplicate
OTHER = 2  # same event_id, other content: a conflicting duplicate


class Dedupe:
    def __init__(self) -> None:
        self.seen: dict[str, bytes] = {}  # event_id → content fingerprint
        self.refund_ids: set[str] = set()

    def check(self, event_id: str, fingerprint: bytes) -> int:
        """NEW, SAME or OTHER for this event id and content."""
        seen = self.seen.get(event_id)
        if seen is None:
            return NEW
        return SAME if seen == fingerprint else OTHER

    def claim(self, event_id: str, fingerprint: bytes) -> None:
        self.seen[event_id] = fingerprint
