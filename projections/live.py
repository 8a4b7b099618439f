"""The live balances as ``projections.audit`` compares them with a rebuild.

There are no snapshots any more: the live projection is the balances table,
kept by the projector (``projections.projector``) with its tracking row. This
adapter keeps audit's interface until it reads ``projections.readmodels``
directly.
"""

from __future__ import annotations

from typing import NamedTuple

from ledger.store import Store
from projections.projector import catch_up, tracked_position
from projections.readmodels import balance_map, figures
from projections.tables import database


class LiveState(NamedTuple):
    position: int
    records: int
    balances: dict[tuple[str, str], list[int]]
    snapshot_version: int  # the tracked position before this read (0: the tables were never built)


class LiveBalances:
    def __init__(self, store: Store) -> None:
        self.store = store

    def latest(self) -> tuple[int, None]:
        """(the position the tables reflect, 0 when never projected; no snapshot)."""
        return tracked_position(database(self.store)), None

    def current(self) -> LiveState:
        before, _ = self.latest()
        caught_up = catch_up(self.store)
        return LiveState(caught_up.position, figures(self.store).records, balance_map(self.store), before)

    def checkpoint(self) -> LiveState:
        return self.current()
