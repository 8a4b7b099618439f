"""Duplicates (SPEC §8): event ids with the fingerprint of their first content,
and the refund ids claimed (order and share ids live with their orders and
shares)."""

from __future__ import annotations

from ledger.engine import spaces
from ledger.engine.codecs import id_key, marker, present, same
from ledger.engine.tables import StateCache

NEW = 0
SAME = 1  # same event_id, same content: a duplicate
OTHER = 2  # same event_id, other content: a conflicting duplicate


class Dedupe:
    def __init__(self, cache: StateCache) -> None:
        self.seen = cache.table(spaces.SEEN, id_key, same, same)  # event_id → content fingerprint
        self.refunds = cache.table(spaces.REFUND_IDS, id_key, marker, present)

    def check(self, event_id: str, fingerprint: bytes) -> int:
        """NEW, SAME or OTHER for this event id and content."""
        seen = self.seen.get(event_id)
        if seen is None:
            return NEW
        return SAME if seen == fingerprint else OTHER

    def claim(self, event_id: str, fingerprint: bytes) -> None:
        self.seen.put(event_id, fingerprint)

    def refund_claimed(self, refund_id: str) -> bool:
        return self.refunds.get(refund_id) is not None

    def claim_refund(self, refund_id: str) -> None:
        self.refunds.put(refund_id, True)

    def release_refund(self, refund_id: str) -> None:
        self.refunds.delete(refund_id)
