"""Duplicates (SPEC §8): each event id with where its first occurrence is
recorded, and the refund ids claimed (order and share ids live with their
orders and shares).

An event id's row points at the record of its first occurrence (segment
version, index in the segment) instead of holding a fingerprint of its
content: the content is in the journal already. Only when an id repeats —
rare — are the two contents compared (``schemas.decode.fingerprint`` of both),
so a new event pays no fingerprint at all."""

from __future__ import annotations

from typing import Callable, Final

from ledger.engine import spaces
from ledger.engine.codecs import decoder, encode, id_key, marker, present
from ledger.engine.tables import StateCache
from schemas.decode import Decoded, fingerprint

At = tuple[int, int]  # (segment version, index of the record in it)
FirstRaw = Callable[[int, int], bytes]  # the raw bytes of the record at (version, index)

NEW: Final = 0
SAME: Final = 1  # same event_id, same content: a duplicate
OTHER: Final = 2  # same event_id, other content: a conflicting duplicate


class Dedupe:
    def __init__(self, cache: StateCache, first_raw: FirstRaw) -> None:
        # Read once each (a new id is checked and claimed in one batch): not kept after it commits.
        self.seen = cache.table(spaces.SEEN, id_key, encode, decoder(tuple[int, int]), keep=False)  # event_id → At
        self.refunds = cache.table(spaces.REFUND_IDS, id_key, marker, present, keep=False)
        self.first_raw = first_raw

    def check(self, event_id: str, decoded: Decoded) -> int:
        """NEW, SAME or OTHER for this event id and content."""
        at = self.seen.get(event_id)
        if at is None:
            return NEW
        return SAME if fingerprint(self.first_raw(*at)) == decoded.fingerprint() else OTHER

    def claim(self, event_id: str, at: At) -> None:
        self.seen.put(event_id, at)

    def refund_claimed(self, refund_id: str) -> bool:
        return self.refunds.get(refund_id) is not None

    def claim_refund(self, refund_id: str) -> None:
        self.refunds.put(refund_id, True)

    def release_refund(self, refund_id: str) -> None:
        self.refunds.delete(refund_id)
