"""The live balances projection: snapshots in the store, caught up from the
notification log.

A projection process (``commission-ledger project``) follows the store's
notification log and records a snapshot of every (promoter, currency) balance
together with an eventsourcing ``Tracking`` row (the notification id it
reflects) in one transaction. Readers load the newest snapshot and fold only
the segments committed after it, so reads stay fast however long the journal
grows, and a projection process can stop, restart and catch up without
reprocessing or missing anything. ``audit replay`` compares it with a full
rebuild.
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec
from eventsourcing.persistence import IntegrityError, Tracking

from ledger import log
from ledger.records import decode_segment_money
from ledger.store import Row, Store
from projections.balances import fold_transfer

SNAPSHOT_ID = "projection:balances"
SNAPSHOT_TOPIC = "commission_ledger.BalancesSnapshot"
TRACKING_NAME = "projection:balances"


class BalancesSnapshot(msgspec.Struct, frozen=True, array_like=True):
    position: int  # the notification id (store position) it reflects
    records: int
    rows: list[tuple[str, str, int, int, int]]


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(BalancesSnapshot)


class LiveState(NamedTuple):
    position: int
    records: int
    balances: dict[tuple[str, str], list[int]]
    snapshot_version: int


class LiveBalances:
    def __init__(self, store: Store) -> None:
        self.store = store

    def latest(self) -> tuple[int, BalancesSnapshot | None]:
        rows = self.store.recorder.select_events(SNAPSHOT_ID, desc=True, limit=1)
        if not rows:
            return 0, None
        return rows[0].originator_version, _decoder.decode(rows[0].state)

    def current(self) -> LiveState:
        """Newest snapshot + every segment committed after it."""
        version, snapshot = self.latest()
        balances: dict[tuple[str, str], list[int]] = {}
        position = records = 0
        if snapshot is not None:
            position, records = snapshot.position, snapshot.records
            balances = {(p, c): [a, b, d] for p, c, a, b, d in snapshot.rows}
        for notification_id, _, segment in log.segments(self.store, after=position, decode=decode_segment_money):
            for record in segment.records:
                for transfer in record.transfers:
                    fold_transfer(balances, transfer)
            records += len(segment.records)
            position = notification_id
        return LiveState(position, records, balances, version)

    def checkpoint(self) -> LiveState:
        """Record a snapshot at the current position (if it moved), with its
        tracking row, in one transaction. Safe to run from several processes:
        the loser of a race simply keeps the winner's snapshot."""
        state = self.current()
        tracked = self.store.position(TRACKING_NAME) or 0
        if state.position <= tracked:
            return state
        rows = [(p, c, *v) for (p, c), v in sorted(state.balances.items())]
        snapshot = BalancesSnapshot(state.position, state.records, rows)
        try:
            self.store.recorder.insert_events(
                [Row(SNAPSHOT_ID, state.snapshot_version + 1, SNAPSHOT_TOPIC, _encoder.encode(snapshot))],  # type: ignore[list-item]
                tracking=Tracking(TRACKING_NAME, state.position),
            )
        except IntegrityError:
            pass
        return state
