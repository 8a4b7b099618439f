"""eventsourcing process recorders that record several tracking positions in
the same transaction as the events (one per Kafka partition a batch advanced).

The stock recorders take one ``tracking=`` object per insert; a batch from a
consumer advances several partitions (its events partition and the shares
topic's), so these accept ``trackings=[...]`` too. The SQLite one also inserts
with ``executemany`` instead of one statement per event.
"""

from __future__ import annotations

from typing import Any, Sequence

from eventsourcing.persistence import StoredEvent, Tracking
from eventsourcing.popo import POPOProcessRecorder
from eventsourcing.sqlite import SQLiteCursor, SQLiteProcessRecorder


def _trackings(kwargs: dict[str, Any]) -> list[Tracking]:
    trackings = list(kwargs.get("trackings") or ())
    if kwargs.get("tracking") is not None:
        trackings.append(kwargs["tracking"])
    return trackings


class BatchSQLiteProcessRecorder(SQLiteProcessRecorder):
    def _insert_events(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        c.executemany(
            self.insert_events_statement,
            [(s.originator_id, s.originator_version, s.topic, s.state) for s in stored_events],
        )
        for tracking in _trackings(kwargs):
            self._insert_tracking(c, tracking)
        return None


class MultiTrackingPOPOProcessRecorder(POPOProcessRecorder):
    def _assert_uniqueness(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        super()._assert_uniqueness(stored_events)
        for tracking in _trackings(kwargs):
            self._assert_tracking_uniqueness(tracking)

    def _update_table(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        notification_ids = super()._update_table(stored_events)
        for tracking in _trackings(kwargs):
            self._insert_tracking(tracking)
        return notification_ids


try:  # psycopg is an optional extra of eventsourcing
    from eventsourcing.postgres import PostgresProcessRecorder
except ImportError:  # pragma: no cover
    PostgresProcessRecorder = None  # type: ignore[assignment,misc]

if PostgresProcessRecorder is not None:

    class MultiTrackingPostgresProcessRecorder(PostgresProcessRecorder):  # type: ignore[misc,valid-type]
        def _insert_events(self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
            for tracking in _trackings(kwargs):
                self._insert_tracking(curs, tracking=tracking)
            kwargs.pop("tracking", None)
            kwargs.pop("trackings", None)
            super(PostgresProcessRecorder, self)._insert_events(curs, stored_events, **kwargs)
