"""The PostgreSQL process recorder (see ``ledger.recorders``), in a module of
its own: eventsourcing imports it by topic only when a ``postgresql://`` store
is opened, so commands on SQLite never pay for importing psycopg (~0.2 s)."""

from __future__ import annotations

from typing import Any, Sequence

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresProcessRecorder

from ledger.recorders import trackings_of
from ledger.statestore import POSTGRES_STATE_TABLE, postgres_write


class MultiTrackingPostgresProcessRecorder(PostgresProcessRecorder):
    def create_table(self) -> None:
        super().create_table()
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(POSTGRES_STATE_TABLE)

    def _insert_events(self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        for tracking in trackings_of(kwargs):
            self._insert_tracking(curs, tracking=tracking)
        state = kwargs.pop("state", None)
        if state is not None:
            postgres_write(curs, *state)
        kwargs.pop("tracking", None)
        kwargs.pop("trackings", None)
        super(PostgresProcessRecorder, self)._insert_events(curs, stored_events, **kwargs)
