"""Writes are atomic with their idempotency record (SPEC §11): the command's
records and the record of its key commit in one transaction, so a crash or an
error leaves both or neither, and a retry with the same key either returns the
first response or runs the command once."""

from __future__ import annotations

import random
import signal
import subprocess
import time

import httpx
import pytest
from eventsourcing.persistence import PersistenceError

from devkit.broker import free_port, wait_for_port
from ledger.books import TREASURY, Books
from ledger.records import Adjusted, PaidOut
from ledger.store import JournalStore, Store, StoreError
from service.idempotency import KeyConflict, run_once
from tests.helpers import click, feed, new_ledger, order, share
from tests.test_service import EXE, FINANCE, _tokens_file

AS_OF = "2026-02-01T00:00:00Z"


def _treasury(store: Store, kind: type) -> list:
    return [r for _, r in Books(store).ledger(TREASURY).records() if isinstance(r, kind)]


def _settled_store(url: str) -> Store:
    ledger = new_ledger(store_url=url)
    feed(ledger, [share("s1", "p1", "2026-01-01T00:00:00Z"), click("b1", "s1", "2026-01-01T01:00:00Z"),
                  order("o1", "b1", "2026-01-01T02:00:00Z", amount=10_000)])
    ledger.settle(AS_OF)
    return ledger.store.store


def _run(store: Store, key: str, body: bytes = b'{"as_of": "2026-02-01T00:00:00Z"}'):
    def execute(also):
        return Books(store).pay(AS_OF, also=also)[0]

    def render(claim):
        record = Books(store).record_at(TREASURY, claim.position)
        return 201, f"{claim.actor} paid {[(t.promoter_id, t.amount_minor) for t in record.transfers]}".encode()

    return run_once(store, key, body, "fin-ops", execute, render)


def test_a_failure_in_the_payouts_transaction_leaves_neither_the_payout_nor_the_key(tmp_path, monkeypatch):
    store = _settled_store(f"sqlite:///{tmp_path}/ledger.db")
    real = store.recorder.insert_events

    def failing(rows, **kwargs):
        if any(str(row.originator_id).startswith("idempotency:") for row in rows):
            raise PersistenceError("disk I/O error (injected)")
        return real(rows, **kwargs)

    monkeypatch.setattr(store.recorder, "insert_events", failing)
    with pytest.raises(StoreError, match="injected"):
        _run(store, "k-1")
    monkeypatch.setattr(store.recorder, "insert_events", real)
    assert _treasury(store, PaidOut) == []
    assert _key_streams(store) == []  # neither the payout nor its key
    first = _run(store, "k-1")  # the retry runs the command once
    again = _run(store, "k-1")  # and is then answered from the record
    assert first == again == (201, b"fin-ops paid [('p1', 1500)]")
    assert len(_treasury(store, PaidOut)) == 1
    with pytest.raises(KeyConflict):
        _run(store, "k-1", b'{"as_of": "2026-03-01T00:00:00Z"}')


def _key_streams(store: Store) -> list[str]:
    return [n.originator_id for n in store.recorder.select_notifications(1, 1000) if str(n.originator_id).startswith("idempotency:")]


def test_two_requests_with_one_key_at_once_run_the_command_once(tmp_path):
    """Both compute; one commits the payout and its key; the other's transaction
    fails on the key and it answers from the winner's record."""
    import threading

    url = f"sqlite:///{tmp_path}/ledger.db"
    _settled_store(url)
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(_run(Store(url), "same"))) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [(201, b"fin-ops paid [('p1', 1500)]")] * 6
    assert len(_treasury(Store(url), PaidOut)) == 1


def test_a_server_killed_at_any_moment_of_a_write_leaves_both_or_neither(tmp_path):
    """SIGKILL the service while adjustments are in flight, at random moments,
    then retry every key: each key ends with exactly one adjustment and the
    same response on every later retry; no key is left claimed without one."""
    store_url = f"sqlite:///{tmp_path}/ledger.db"
    _settled_store(store_url)
    tokens = _tokens_file(tmp_path / "tokens.toml")
    rng = random.Random(7)
    keys = [f"adj-{i}" for i in range(8)]

    def start() -> tuple[subprocess.Popen, str]:
        port = free_port()
        proc = subprocess.Popen([EXE, "--store", store_url, "serve", "--port", str(port), "--tokens", str(tokens)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_for_port("127.0.0.1", port, 30)
        return proc, f"http://127.0.0.1:{port}"

    def post(url: str, key: str, timeout: float) -> httpx.Response:
        body = {"promoter_id": "p1", "currency": "CNY", "amount": 100 + int(key.split("-")[1]), "reason": f"bonus {key}"}
        return httpx.post(f"{url}/v1/adjustments", json=body, timeout=timeout,
                          headers={"Authorization": f"Bearer {FINANCE}", "Idempotency-Key": key})

    killed_mid_request = 0
    for key in keys:
        proc, url = start()
        sender = __import__("threading").Thread(target=lambda: _swallow(lambda: post(url, key, 10)))
        sender.start()
        time.sleep(rng.uniform(0.0, 0.08))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        sender.join()
        killed_mid_request += 1
    proc, url = start()
    try:
        responses = {key: post(url, key, 30) for key in keys}
        again = {key: post(url, key, 30) for key in keys}
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert all(r.status_code == 201 for r in responses.values()), {k: r.text for k, r in responses.items()}
    assert {k: r.content for k, r in again.items()} == {k: r.content for k, r in responses.items()}
    adjustments = _treasury(Store(store_url), Adjusted)
    assert sorted(a.reason for a in adjustments) == sorted(f"bonus {k}" for k in keys)  # exactly one each
    assert killed_mid_request == len(keys)


def _swallow(call) -> None:
    try:
        call()
    except httpx.HTTPError:
        pass
