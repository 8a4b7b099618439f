"""JSONL files as a source of wire events: one event per line, read lazily.

Lines are yielded with their source (file name as given, 1-based line number)
and without the line terminator. A line that is empty is skipped: it carries
no message (a whitespace-only line is kept and dead-lettered as malformed_json).
"""

from __future__ import annotations

import sys
from typing import BinaryIO, Iterator

from ledger.records import Source

STDIN = "-"


def read_lines(stream: BinaryIO, name: str) -> Iterator[tuple[bytes, Source]]:
    for number, line in enumerate(stream, start=1):
        if line.endswith(b"\n"):
            line = line[:-1]
        if not line:
            continue
        yield line, Source(file=name, line=number)


def read_files(paths: list[str]) -> Iterator[tuple[bytes, Source]]:
    """Events from each path in turn; ``-`` is standard input."""
    for path in paths:
        if path == STDIN:
            yield from read_lines(sys.stdin.buffer, "<stdin>")
            continue
        with open(path, "rb", buffering=1 << 20) as stream:
            yield from read_lines(stream, path)
