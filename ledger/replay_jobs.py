"""Re-executing a store's journals on every core (``audit replay --jobs N``).

Each journal is re-executed in a worker process of its own (``reexecute``:
the store opened again by its URL, ``ledger.replay`` on one journal), while
the caller goes on with its own pass over the notification log. Results are
taken in the caller's order (journal names sorted), so the output is the same
bytes as a serial run whatever finishes first. A journal re-executes only
from its own records, so nothing is shared between workers but the store,
which they only read.

``jobs`` 1, or a ``memory://`` store (it lives in this process), re-executes
in this process, one journal after the other, when the results are asked for.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Iterable

from ledger.errors import IntegrityError
from ledger.replay import replay_journal
from ledger.store import JournalStore, Store


def default_jobs() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def failures_of(store: Store, journal: str) -> list[str]:
    """What re-executing ``journal`` finds: its first differing record or
    broken link (one line naming journal and position), else the differences
    of its state tables from the replayed state."""
    try:
        result = replay_journal(JournalStore(store, journal), compare_state=True)
    except IntegrityError as exc:
        return [str(exc)]
    return result.state_differences


def reexecute(url: str, journal: str) -> list[str]:
    """``failures_of`` in a worker process: the store opened by its URL."""
    store = Store(url)
    try:
        return failures_of(store, journal)
    finally:
        store.close()


class Reexecution:
    """Journals re-executing in worker processes from the moment this is made
    (``start``); ``failures`` waits for the ones asked for, in that order."""

    def __init__(self, store: Store, jobs: int) -> None:
        self.store = store
        self.jobs = max(1, jobs)
        self._pool: ProcessPoolExecutor | None = None
        self._futures: dict[str, Future[list[str]]] = {}

    @property
    def parallel(self) -> bool:
        return self.jobs > 1 and not self.store.url.startswith("memory:")

    def start(self, journals: Iterable[str]) -> None:
        """Begin re-executing ``journals`` (each at most once) in the workers."""
        if not self.parallel:
            return
        for name in journals:
            if name in self._futures:
                continue
            if self._pool is None:
                # spawn, not fork: a forked child would share this process's open
                # database connections and threads.
                self._pool = ProcessPoolExecutor(self.jobs, mp_context=multiprocessing.get_context("spawn"))
            self._futures[name] = self._pool.submit(reexecute, self.store.url, name)

    def failures(self, journals: list[str]) -> list[str]:
        """The failures of ``journals``, in that order (each journal's lines together)."""
        self.start(journals)
        found: list[str] = []
        for name in journals:
            future = self._futures.get(name)
            found += future.result() if future is not None else failures_of(self.store, name)
        return found

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> "Reexecution":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
