"""``ingest FILE…``: JSONL files (``-`` = stdin) into the ``main`` journal, or
with ``--workers N`` split by buyer among N processes, child *i* writing the
journal ``file:<i>/<N>`` (see ``consumers.jsonl`` for the split)."""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Any, Callable, Iterable, Iterator

from cli.errors import PROG, UsageError
from cli.books import open_books
from cli.options import Command, config_path, require_positive, rules, store_url
from cli.progress import Bars
from cli.render import out
from cli.supervisor import supervise
from consumers.jsonl import STDIN, events_for, read_files, share_copies, shares
from ledger.outcomes import IngestCounts
from ledger.books import TREASURY, Books
from ledger.limits import parse_limits
from ledger.records import Source
from ledger.store import Store
from projections.render import render_json

SPLIT_JOURNAL = re.compile(r"file:(\d+)/(\d+)")


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE")
    parser.add_argument("--batch-events", type=int, default=5_000, help="events per store transaction (default 5000)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="split the files by buyer among N processes (one core each), worker i writing the "
                             "journal file:i/N; a store split so is always ingested with the same N (default 1: "
                             "one process, journal main)")


def split_journal(worker: int, workers: int) -> str:
    """The journal of worker ``worker`` of ``ingest --workers workers``."""
    return f"file:{worker}/{workers}"


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


def _check_split(journals: list[str], workers: int) -> None:
    """Refuse to mix a split store with another way of feeding it: a buyer's
    events must stay in one journal, so a store split by ``--workers N`` is
    always ingested with that N, and one fed by ``main`` (or Kafka) never split."""
    fed = [name for name in journals if name != TREASURY]
    splits = sorted({int(m[2]) for m in map(SPLIT_JOURNAL.fullmatch, fed) if m})
    others = [name for name in fed if not SPLIT_JOURNAL.fullmatch(name)]
    if splits and (workers != splits[0] or len(splits) > 1):
        raise UsageError(f"this store is split by buyer into {splits[0]} journals (file:i/{splits[0]}, written by "
                         f"`ingest --workers {splits[0]}`): ingest into it with --workers {splits[0]}, not {workers}")
    if workers > 1 and others:
        raise UsageError(f"--workers {workers}: this store is already fed by journal {others[0]!r} "
                         f"({'Kafka consume' if others[0].startswith('kafka:') else 'ingest without --workers'}); "
                         "a store split by buyer is fed only by `ingest --workers N`, always with the same N")


def run(args: argparse.Namespace) -> int:
    require_positive(args, "--batch-events", "--workers")
    for path in args.files:
        if path != STDIN and not os.path.isfile(path):
            raise UsageError(f"no such file: {path}")
    if args.workers > 1:
        return _run_workers(args)
    with Bars() as bars:
        opened = open_books(args, bars)
        _check_split(opened.journals(), 1)
        ledger = opened.ledger("main")
        items, progress = _progress(args.files, bars)
        counts = ledger.ingest(items, batch_events=args.batch_events, progress=progress)
    _summary(args, counts, ledger.engine.parked_counts(), ledger.position)
    return 0


# --------------------------------------------------------------- --workers N
def _run_workers(args: argparse.Namespace) -> int:
    """N children, child i ingesting its split into ``file:i/N``; the summary
    of them all. Each reads the files itself; each sends the parent the bytes
    it has read (the progress bar) and at the end its counts."""
    n = args.workers
    if STDIN in args.files:
        raise UsageError("--workers: standard input (-) cannot be split (each worker reads the files itself); give a file")
    rules(args)  # a bad config stops here, before any worker starts
    url = store_url(args)
    store = Store(url)  # one process creates the schema; a bad URL stops here (exit 2)
    try:
        _check_split(store.journals(), n)
    finally:
        store.close()
    members = [argparse.Namespace(**{**vars(args), "store": url, "config": config_path(args), "member": (i, n)})
               for i in range(n)]
    size = sum(os.path.getsize(path) for path in args.files)
    read = [0] * n
    results: dict[int, dict[str, Any]] = {}
    with Bars() as bars:
        update = bars.share(f"ingesting ({n} workers)", size, "bytes")

        def receive(worker: int, message: tuple[str, Any]) -> None:
            kind, value = message
            if kind == "read":
                read[worker] = value
                update(sum(read) // n)
            else:
                results[worker] = value

        codes = supervise(_worker, members, receive)
    if any(codes) or len(results) != n:
        print(f"{PROG}: ingest --workers {n}: workers exited with {codes}; what they committed stays: the same "
              "command again finishes the job (events already applied count as duplicates)", file=sys.stderr)
        return 1
    counts = IngestCounts()
    counts.merge(results[0]["shares"])  # every worker applied the shares: count them once
    for worker in range(n):
        counts.merge(results[worker]["events"])
    parked = (sum(r["parked"][0] for r in results.values()), sum(r["parked"][1] for r in results.values()))
    journals = {results[w]["journal"]: results[w]["records"] for w in range(n)}
    _summary(args, counts, parked, sum(journals.values()), journals)
    return 0


def _worker(args: argparse.Namespace) -> int:
    """Child ``i`` of ``--workers N`` (``args.member == (i, N)``): every share
    first (worker 0 all of them, the others the valid ones: see
    ``consumers.jsonl.share_copies``), then its buyers' events (and for worker 0
    the lines without a routing key), into ``file:i/N``."""
    worker, workers = args.member
    report = args.report
    books = Books(Store(args.store), rules(args), parse_limits(os.environ))
    ledger = books.ledger(split_journal(worker, workers))
    found = shares(read_files(args.files))
    share_counts = ledger.ingest(found if worker == 0 else share_copies(found), batch_events=args.batch_events)
    counted = _BytesRead(read_files(args.files), sum(os.path.getsize(path) for path in args.files))
    event_counts = ledger.ingest(events_for(counted, worker, workers), batch_events=args.batch_events,
                                 progress=lambda _: report.send(("read", counted.count)))
    report.send(("done", {"shares": share_counts, "events": event_counts, "parked": ledger.engine.parked_counts(),
                          "journal": ledger.store.name, "records": ledger.position}))
    return 0


def _summary(args: argparse.Namespace, counts: IngestCounts, parked: tuple[int, int], records: int,
             journals: dict[str, int] | None = None) -> None:
    parked_clicks, parked_refunds = parked
    if args.format == "json":
        summary: dict[str, Any] = {
            "accepted": counts.accepted,
            "duplicates": counts.duplicates,
            "parked": counts.parked,
            "dead_letters": counts.dead_letters,
            "dead_letter_reasons": dict(sorted(counts.reasons.items())),
            "still_parked": {"clicks": parked_clicks, "refunds": parked_refunds},
            "journal_records": records,
        }
        if journals is not None:
            summary["journals"] = journals
        out(render_json(summary) + "\n")
        return
    out(f"accepted={counts.accepted} duplicates={counts.duplicates} parked={counts.parked} dead_letters={counts.dead_letters}\n")
    for reason, n in sorted(counts.reasons.items()):
        out(f"  dead letter {reason}: {n}\n")
    out(f"still parked: {parked_clicks} clicks (share unknown), {parked_refunds} refunds (order unknown)\n")


INGEST = Command(options, run)
