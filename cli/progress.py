"""Progress bars on stderr (rich) for the commands that can take more than a second.

Shown only when stderr is a terminal: scripts, pipes and tests see nothing. A bar
shows a percentage and the time left where the size is known (the bytes of the
input files; the notification log, whose size is the id of its newest
notification), otherwise a count and its rate (segments of a journal read through).

The store reads are observed from outside the domain: ``Bars.store`` opens a
``Store`` whose notification log and journal reads move the bars, so the
audit's passes and a first catch-up of the read models show progress without
ledger/ or projections/ knowing about progress at all.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Iterator

from ledger.records import SEGMENT_TOPIC
from ledger.store import READ_PAGE, Store

Update = Callable[..., None]  # update(done, total=None): total=None keeps the bar's size


def _ignore(done: int, total: int | None = None) -> None:
    pass


class Bars:
    """The progress bars of one command, as a context manager; inert (every
    update is a no-op, ``store`` a plain Store) when stderr is not a terminal."""

    def __init__(self) -> None:
        self.shown = sys.stderr.isatty()
        self._progress = None
        if self.shown:
            # rich only when a bar is shown: importing it costs every other
            # command ~70 ms of its start (a statement page takes a few ms).
            from cli.progress_bars import progress_on_stderr

            self._progress = progress_on_stderr()

    def __enter__(self) -> "Bars":
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._progress is not None:
            self._progress.stop()

    def _task(self, description: str, size: int | None, unit: str, completed: int = 0) -> Update:
        progress = self._progress
        if progress is None:
            return _ignore
        task = progress.add_task(description, total=size, completed=completed, unit=unit)
        return lambda done, total=None: progress.update(task, completed=done, total=total)

    def share(self, description: str, total: int, unit: str, completed: int = 0) -> Update:
        """A bar with a known size: ``update(done)`` shows the percentage and the time left."""
        return self._task(description, total, unit, completed)

    def counter(self, description: str, unit: str) -> Update:
        """A bar of unknown size: ``update(count)`` shows the count and its rate."""
        return self._task(description, None, unit)

    def store(self, url: str) -> Store:
        """The store at ``url``; one whose reads move these bars when they are shown."""
        return _ObservedStore(url, self) if self.shown else Store(url)


class _ObservedStore(Store):
    """A Store whose reads move the bars: the notification log as a share of the
    store, journal replays (whatever replays them) as a count of segments."""

    def __init__(self, url: str, bars: Bars) -> None:
        super().__init__(url)
        self._bars = bars
        self.recorder = _CountingRecorder(self.recorder, bars)

    def notifications(self, after: int = 0, page: int = READ_PAGE) -> Iterator[tuple[int, str, int, bytes]]:
        newest = self.recorder.max_notification_id() or 0
        what = "reading the store" + (f" after position {after:,}" if after else "")
        update = self._bars.share(what, max(newest, after), "positions", completed=after)
        position = after
        try:
            for notification in super().notifications(after, page):
                yield notification
                position = notification[0]
                update(position)  # once the reader is done with it
        finally:  # the end of the log, or where the reader stopped (time travel): all it needed
            update(position, total=position)


class _CountingRecorder:
    """The store's eventsourcing recorder, counting the journal segments read
    through it (a Ledger replays its journal with ``select_events``)."""

    def __init__(self, recorder: Any, bars: Bars) -> None:
        self._recorder = recorder
        self._bars = bars
        self._update: Update | None = None
        self._segments = 0

    def __getattr__(self, name: str) -> Any:  # everything else is the recorder's own
        return getattr(self._recorder, name)

    def select_events(self, *args: Any, **kwargs: Any) -> Any:
        rows = self._recorder.select_events(*args, **kwargs)
        segments = sum(1 for row in rows if row.topic == SEGMENT_TOPIC)
        if segments:
            if self._update is None:
                self._update = self._bars.counter("replaying journals", "segments")
            self._segments += segments
            self._update(self._segments)
        return rows
