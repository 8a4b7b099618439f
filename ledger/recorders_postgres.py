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
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        """One transaction, statement by statement: eventsourcing pipelines
        these, and psycopg's pipeline mode hangs (client waiting on the sync,
        server waiting on the client) when one parameter is tens of MB — a
        segment settling 100k orders is. A batch is a handful of statements
        (trackings, state deletes, state upserts, lock, insert), so the round
        trips cost nothing here."""
        with self.datastore.get_connection() as conn, conn.transaction():
            with conn.cursor() as curs:
                self._insert_events(curs, stored_events, **kwargs)
            if not stored_events:
                return None
            with conn.cursor() as curs:
                self._insert_stored_events(curs, stored_events, **kwargs)
                return self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)

    def create_table(self) -> None:
        super().create_table()
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(POSTGRES_STATE_TABLE)

    def _insert_events(self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        for tracking in trackings_of(kwargs):
            self._insert_tracking(curs, tracking=tracking)
        state = kwargs.pop("state", None)
        if state is not None:
            postgres_write(curs, state[0], state[1])
        kwargs.pop("tracking", None)
        kwargs.pop("trackings", None)
        super(PostgresProcessRecorder, self)._insert_events(curs, stored_events, **kwargs)
