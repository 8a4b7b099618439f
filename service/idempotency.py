"""Idempotency keys for write requests, committed with the command they ran.

A key is a stream ``idempotency:<sha256(caller, key)>`` (each token's keys
are its own) with one row: the SHA-256 of the request as parsed (method,
path and the body re-encoded, so whitespace and key order do not matter), who made it and where the command's record stands in the treasury
journal. That row is written **in the same transaction as the command's
record** (``Books.pay``/``adjust_at`` take it as ``also``): a crash or an
error leaves both or neither, so there is no claimed-but-unanswered key. The
response is rendered from the recorded command, the first time and on every
retry alike, so the same key with the same body gets the same response; with
another body, 409. Two requests with one key at once: both may compute, one
commits; the other's transaction fails on the key's row and it answers from
the winner's record.
"""

from __future__ import annotations

import hashlib
from typing import Callable, Sequence

import msgspec

from ledger.books import Also
from ledger.records import Record
from ledger.store import ConcurrentWriteError, Row, Store

TOPIC = "commission_ledger.Idempotency"


class Claim(msgspec.Struct, frozen=True):
    request_sha256: str
    actor: str
    position: int  # the command's record in the treasury journal


class KeyConflict(Exception):
    """Same key, other request."""


Render = Callable[[Claim], tuple[int, bytes]]


def run_once(store: Store, key: str, request: bytes, actor: str, execute: Callable[[Also], int],
             render: Render) -> tuple[int, bytes]:
    """Run ``execute(also)`` once per key (it commits the command with the rows
    ``also`` gives and returns the command's treasury position); answer with
    ``render(claim)`` of the recorded command."""
    # Keys are per caller: one finance user's key is not another's.
    scoped = f"{len(actor)}:{actor}:{key}"
    stream = f"idempotency:{hashlib.sha256(scoped.encode()).hexdigest()}"
    digest = hashlib.sha256(request).hexdigest()
    first = _claim(store, stream)
    if first is None:

        def also(position: int, records: Sequence[Record]) -> list[Row]:
            claim = Claim(digest, actor, position)
            return [Row(stream, 1, TOPIC, msgspec.msgpack.encode(claim))]

        try:
            return render(Claim(digest, actor, execute(also)))
        except ConcurrentWriteError:
            first = _claim(store, stream)
            if first is None:
                raise
    if first.request_sha256 != digest:
        raise KeyConflict
    return render(first)


def _claim(store: Store, stream: str) -> Claim | None:
    rows = store.recorder.select_events(stream, limit=1)
    return msgspec.msgpack.decode(rows[0].state, type=Claim) if rows else None
