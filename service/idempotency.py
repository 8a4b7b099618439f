"""Idempotency keys for write requests, kept in the event store.

A key is a stream ``idempotency:<key>``: version 1 claims it with the request's
SHA-256, version 2 holds the response. The claim is an insert that only one
request can win (the store's primary key), so two requests with the same key
never both execute; the same key with another body is a 409.
"""

from __future__ import annotations

import hashlib
import time
from typing import Callable

import msgspec
from eventsourcing.persistence import IntegrityError

from ledger.store import Row, Store

TOPIC = "commission_ledger.Idempotency"
WAIT_S = 30.0


class Claim(msgspec.Struct, frozen=True):
    request_sha256: str
    status: int = 0
    body: bytes = b""


class KeyConflict(Exception):
    """Same key, other request."""


class KeyInProgress(Exception):
    """Same key, same request, still running elsewhere."""


def run_once(store: Store, key: str, request: bytes, execute: Callable[[], tuple[int, bytes]]) -> tuple[int, bytes]:
    stream = f"idempotency:{hashlib.sha256(key.encode()).hexdigest()}"
    digest = hashlib.sha256(request).hexdigest()
    recorder = store.recorder
    try:
        recorder.insert_events([Row(stream, 1, TOPIC, msgspec.msgpack.encode(Claim(digest)))])  # type: ignore[list-item]
    except IntegrityError:
        return _replay(store, stream, digest)
    status, body = execute()
    recorder.insert_events([Row(stream, 2, TOPIC, msgspec.msgpack.encode(Claim(digest, status, body)))])  # type: ignore[list-item]
    return status, body


def _replay(store: Store, stream: str, digest: str) -> tuple[int, bytes]:
    deadline = time.monotonic() + WAIT_S
    while True:
        rows = store.recorder.select_events(stream)
        first = msgspec.msgpack.decode(rows[0].state, type=Claim)
        if first.request_sha256 != digest:
            raise KeyConflict
        if len(rows) > 1:
            done = msgspec.msgpack.decode(rows[1].state, type=Claim)
            return done.status, done.body
        if time.monotonic() > deadline:
            raise KeyInProgress
        time.sleep(0.05)
