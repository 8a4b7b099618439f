"""The eventsourcing SQLite process recorder, inserting a batch in one statement.

The stock recorder executes one INSERT per event to collect notification ids,
which the journal does not need; ``executemany`` keeps the same table, the same
transaction and tracking semantics at a fraction of the cost per event.
"""

from __future__ import annotations

from typing import Any, Sequence

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteCursor, SQLiteProcessRecorder


class BatchSQLiteProcessRecorder(SQLiteProcessRecorder):
    def _insert_events(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        c.executemany(
            self.insert_events_statement,
            [(s.originator_id, s.originator_version, s.topic, s.state) for s in stored_events],
        )
        tracking = kwargs.get("tracking")
        if tracking is not None:
            self._insert_tracking(c, tracking)
        return None
