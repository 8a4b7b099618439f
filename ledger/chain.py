"""Tamper evidence (SPEC §12): every journal is a hash chain.

Each stored segment carries SHA-256(predecessor's chain hash ‖ its own
payload) (``ledger.records.frame``); the first links to the journal's genesis
hash. A journal's *head* is its last record position and that hash. An
auditor keeps head lines (``head <journal> <position> sha256:<hex>``) outside
the database; ``Heads.check`` later proves that nothing recorded up to each
anchored head changed, even if the chain after it was recomputed.
"""

from __future__ import annotations

import hashlib
import re
from typing import Iterable, NamedTuple

from ledger.records import genesis, unframe

HEAD_LINE = re.compile(r"head (\S+) (\d+) sha256:([0-9a-f]{64})")


class ChainError(Exception):
    """A broken link: the message names the journal and the segment."""


class Head(NamedTuple):
    journal: str
    position: int  # the last record position covered
    sha256: bytes

    def line(self) -> str:
        return f"head {self.journal} {self.position} sha256:{self.sha256.hex()}"


def parse_heads(lines: Iterable[str]) -> list[Head]:
    """The head lines among ``lines`` (an earlier audit's whole output will do)."""
    heads = []
    for line in lines:
        match = HEAD_LINE.fullmatch(line.strip())
        if match:
            heads.append(Head(match.group(1), int(match.group(2)), bytes.fromhex(match.group(3))))
    return heads


def link(journal: str, version: int, prev_sha256: bytes, stored: bytes) -> bytes:
    """The chain hash ``stored`` carries, after checking that it links to ``prev_sha256``."""
    carried, payload = unframe(stored)
    if carried is None:
        raise ChainError(f"journal {journal} segment {version}: no chain hash (written before chains: run `commission-ledger migrate`)")
    if hashlib.sha256(prev_sha256 + payload).digest() != carried:
        raise ChainError(f"journal {journal} segment {version}: chain link broken (this segment or one before it was changed)")
    return carried


class Chain:
    """One journal's chain, checked segment by segment in version order."""

    def __init__(self, journal: str) -> None:
        self.journal = journal
        self.head = genesis(journal)
        self.version = 0
        self.position = 0

    def add(self, version: int, stored: bytes, first: int, records: int) -> None:
        if version != self.version + 1:
            raise ChainError(f"journal {self.journal} segment {self.version + 1}: missing (next stored is {version})")
        if first != self.position + 1:
            raise ChainError(f"journal {self.journal} segment {version}: starts at record {first}, expected {self.position + 1}")
        self.head = link(self.journal, version, self.head, stored)
        self.version = version
        self.position += records

    def as_head(self) -> Head:
        return Head(self.journal, self.position, self.head)
