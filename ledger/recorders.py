"""eventsourcing process recorders that write, in the one transaction of an
``insert_events`` call, the segment, several tracking positions (one per
Kafka partition a batch advanced: its events partition and the shares
topic's) and the journal's state writes (``ledger.statestore``).

The stock recorders take one ``tracking=`` object per insert; these accept
``trackings=[...]`` and ``state=(journal_id, ops, version)`` too. The SQLite one also
inserts with ``executemany`` instead of one statement per event, and writes
the state as one changelog row (``ledger.statelog``).
"""

from __future__ import annotations

from typing import Any, Sequence

from eventsourcing.persistence import StoredEvent, Tracking
from eventsourcing.popo import POPOProcessRecorder
from eventsourcing.sqlite import SQLiteCursor, SQLiteProcessRecorder

from ledger.statelog import FOLD_BOUND, SQLITE_LOG_TABLE, fold_cursor, log_write, unfolded
from ledger.statestore import SQLITE_STATE_TABLE, MemoryState


def trackings_of(kwargs: dict[str, Any]) -> list[Tracking]:
    trackings = list(kwargs.get("trackings") or ())
    if kwargs.get("tracking") is not None:
        trackings.append(kwargs["tracking"])
    return trackings


class BatchSQLiteProcessRecorder(SQLiteProcessRecorder):
    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), SQLITE_STATE_TABLE, SQLITE_LOG_TABLE]

    def _insert_events(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        c.executemany(
            self.insert_events_statement,
            [(s.originator_id, s.originator_version, s.topic, s.state) for s in stored_events],
        )
        for tracking in trackings_of(kwargs):
            self._insert_tracking(c, tracking)
        state = kwargs.get("state")
        if state is not None:
            journal, ops, version = state
            if unfolded(c, journal) >= FOLD_BOUND - 1:  # the folder lags, crashed or never ran: fold here, keep the log bounded
                fold_cursor(c, journal)
            log_write(c, journal, version, ops)
        return None


class MultiTrackingPOPOProcessRecorder(POPOProcessRecorder):
    def __init__(self) -> None:
        super().__init__()
        self.state = MemoryState()

    def _assert_uniqueness(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        super()._assert_uniqueness(stored_events)
        for tracking in trackings_of(kwargs):
            self._assert_tracking_uniqueness(tracking)

    def _update_table(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        notification_ids = super()._update_table(stored_events)
        for tracking in trackings_of(kwargs):
            self._insert_tracking(tracking)
        state = kwargs.get("state")
        if state is not None:
            self.state.write(state[0], state[1])
        return notification_ids
