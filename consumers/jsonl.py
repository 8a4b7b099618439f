"""JSONL files as a source of wire events: one event per line, read lazily.

Lines are yielded with their source (file name as given, 1-based line number)
and without the line terminator. A line that is empty is skipped: it carries
no message (a whitespace-only line is kept and dead-lettered as malformed_json).

A file can also be split by buyer among N workers (``ingest --workers N``),
each reading the files itself, as Kafka splits the events topic: worker *i*
keeps the events whose ``buyer_id`` hashes to *i* (``worker_of``), every worker
keeps every share (the promoter network is global), and the lines that cannot
be routed (not a JSON object, no string ``buyer_id``) go to worker 0, so each
is dead-lettered exactly once.
"""

from __future__ import annotations

import sys
import zlib
from typing import BinaryIO, Iterable, Iterator

from ledger.records import Source
from schemas.decode import Decoded, decode_event
from schemas.events import Share
from schemas.peek import route_key

STDIN = "-"

Item = tuple[bytes, Source]


def read_lines(stream: BinaryIO, name: str) -> Iterator[Item]:
    for number, line in enumerate(stream, start=1):
        if line.endswith(b"\n"):
            line = line[:-1]
        if not line:
            continue
        yield line, Source(file=name, line=number)


def read_files(paths: list[str]) -> Iterator[Item]:
    """Events from each path in turn; ``-`` is standard input."""
    for path in paths:
        if path == STDIN:
            yield from read_lines(sys.stdin.buffer, "<stdin>")
            continue
        with open(path, "rb", buffering=1 << 20) as stream:
            yield from read_lines(stream, path)


# ------------------------------------------------------------ split by buyer
def worker_of(buyer_id: bytes, workers: int) -> int:
    """The worker of a buyer (its UTF-8 bytes): CRC-32 mod N. Stable across
    runs, processes and Python versions (unlike ``hash``)."""
    return zlib.crc32(buyer_id) % workers


def _may_be_share(raw: bytes) -> bool:
    """False only for lines that cannot be a share: a share's ``"type"`` is the
    JSON string ``"share"``, which appears literally unless written with escapes."""
    return b'"share"' in raw or b"\\" in raw


def shares(items: Iterable[Item]) -> Iterator[Item]:
    """The lines that are shares (``schemas.peek.route_key``), valid or not."""
    for raw, source in items:
        if _may_be_share(raw) and route_key(raw)[0]:
            yield raw, source


def events_for(items: Iterable[Item], worker: int, workers: int) -> Iterator[Item]:
    """The lines that are not shares and belong to ``worker`` of ``workers``:
    its buyers' events, and for worker 0 every line without a routing key."""
    for raw, source in items:
        is_share, key = route_key(raw)
        if is_share:
            continue
        if (worker_of(key, workers) if key is not None else 0) == worker:
            yield raw, source


def share_copies(items: Iterable[Item]) -> Iterator[Item]:
    """The shares a worker other than 0 applies, so that a bad share is
    dead-lettered once (by worker 0, which applies them all): only valid shares,
    and of those not the ones this run has already seen under their event_id
    (a duplicate, or a conflicting one) or their share_id under another
    event_id (``duplicate_business_id``). A share conflicting with one of an
    earlier run is the exception: every worker dead-letters it (see the README)."""
    event_ids: set[str] = set()
    share_ids: set[str] = set()
    for raw, source in items:
        decoded = decode_event(raw)
        if not isinstance(decoded, Decoded) or not isinstance(decoded.event, Share):
            continue
        share = decoded.event
        if share.event_id in event_ids:
            continue
        event_ids.add(share.event_id)  # claimed even when dead-lettered as a business-id duplicate (SPEC §8)
        if share.share_id in share_ids:
            continue
        share_ids.add(share.share_id)
        yield raw, source
