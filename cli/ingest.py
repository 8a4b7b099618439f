"""``ingest FILE…``: JSONL files (``-`` = stdin) into the ``main`` journal."""

from __future__ import annotations

import argparse
import os
from typing import Callable, Iterable, Iterator

from cli.errors import UsageError
from cli.options import Command, books
from cli.progress import Bars
from cli.render import out
from consumers.jsonl import STDIN, read_files
from ledger.app import IngestCounts, Ledger
from ledger.records import Source
from projections.render import render_json


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument("--batch-events", type=int, default=5_000, help="events per store transaction (default 5000)")
    parser.add_argument("--format", choices=("text", "json"), default="text")


class _BytesRead:
    """The events of the input files, counting the bytes of the lines they came from."""

    def __init__(self, items: Iterable[tuple[bytes, Source]], size: int) -> None:
        self.items = items
        self.size = size
        self.count = 0

    def __iter__(self) -> Iterator[tuple[bytes, Source]]:
        for raw, source in self.items:
            self.count += len(raw) + 1  # the newline read_files strips
            yield raw, source
        self.count = self.size  # and the empty lines it skips


def _progress(files: list[str], bars: Bars) -> tuple[Iterable[tuple[bytes, Source]], Callable[[IngestCounts], None] | None]:
    """The events to ingest, and what reports each batch: the share of the bytes
    read when every input is a file, a count of events when one is stdin."""
    items = read_files(files)
    if not bars.shown:
        return items, None
    if STDIN in files:
        update = bars.counter("ingesting", "events")
        return items, lambda counts: update(counts.total)
    counted = _BytesRead(items, sum(os.path.getsize(path) for path in files))
    update = bars.share("ingesting", counted.size, "bytes")
    return counted, lambda _: update(counted.count)


def run(args: argparse.Namespace) -> int:
    if args.batch_events < 1:
        raise UsageError("--batch-events must be ≥ 1")
    for path in args.files:
        if path != STDIN and not os.path.isfile(path):
            raise UsageError(f"no such file: {path}")
    with Bars() as bars:
        ledger = books(args, bars).ledger("main")
        items, progress = _progress(args.files, bars)
        counts = ledger.ingest(items, batch_events=args.batch_events, progress=progress)
    _summary(args, counts, ledger)
    return 0


def _summary(args: argparse.Namespace, counts: IngestCounts, ledger: Ledger) -> None:
    parked_clicks, parked_refunds = ledger.engine.parked_counts()
    if args.format == "json":
        out(render_json({
            "accepted": counts.accepted,
            "duplicates": counts.duplicates,
            "parked": counts.parked,
            "dead_letters": counts.dead_letters,
            "dead_letter_reasons": dict(sorted(counts.reasons.items())),
            "still_parked": {"clicks": parked_clicks, "refunds": parked_refunds},
            "journal_records": ledger.position,
        }) + "\n")
        return
    out(f"accepted={counts.accepted} duplicates={counts.duplicates} parked={counts.parked} dead_letters={counts.dead_letters}\n")
    for reason, n in sorted(counts.reasons.items()):
        out(f"  dead letter {reason}: {n}\n")
    out(f"still parked: {parked_clicks} clicks (share unknown), {parked_refunds} refunds (order unknown)\n")


INGEST = Command(options, run)
