"""The notification log: every segment of every journal in commit order.

The one loop over the store's notifications that the books, the projections,
the audit and the service fold over; ``decode`` picks how much of each
segment to decode (whole records, or the lighter views projections need).
"""

from __future__ import annotations

from typing import Callable, Iterator, TypeVar

from ledger.records import Segment, decode_segment, unframe
from ledger.store import Store

S = TypeVar("S")


def segments(store: Store, *, after: int = 0, until_position: int | None = None,
             recorded_until_us: int | None = None,
             decode: Callable[[bytes], S] = decode_segment) -> Iterator[tuple[int, str, S]]:  # type: ignore[assignment]
    """(store position, journal, segment) for every segment after store
    position ``after``. Time travel: stop after store position
    ``until_position``, or at the last segment recorded at or before
    ``recorded_until_us`` (segments carry ``recorded_us``)."""
    for notification_id, journal, _, state in store.notifications(after=after):
        if until_position is not None and notification_id > until_position:
            return
        segment = decode(unframe(state)[1])  # the payload, without the chain frame
        if recorded_until_us is not None and segment.recorded_us > recorded_until_us:  # type: ignore[attr-defined]
            return
        yield notification_id, journal, segment


def records(store: Store, **window) -> Iterator[tuple[str, int, object]]:
    """Every record of every journal in commit order: (journal, position, record)."""
    for _, journal, segment in segments(store, **window):
        for offset, record in enumerate(segment.records):
            yield journal, segment.first + offset, record


__all__ = ["Segment", "records", "segments"]
