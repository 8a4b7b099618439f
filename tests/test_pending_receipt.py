"""The pending-receipt listing (SPEC §15, issue 20): the read model, the CLI
command and ``GET /v1/orders?awaiting=receipt`` (a real server), oldest first,
paged; and the metric counting such orders."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import httpx

from devkit.broker import free_port, wait_for_port
from ledger.config import Rules
from ledger.store import Store
from projections.pending_receipt import awaiting_receipt_count, pending_receipt
from tests.helpers import feed, new_ledger, order

EXE = str(Path(sys.executable).parent / "commission-ledger")
TOKEN = "auditor-token-pending"


def _fulfillment(event_id: str, order_id: str, stage: str, at: str) -> dict:
    return {"type": "fulfillment", "event_id": event_id, "occurred_at": at, "order_id": order_id, "buyer_id": "b1",
            "stage": stage}


def _store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/ledger.db"
    ledger = new_ledger(Rules(clock="receipt"), url)
    feed(ledger, [order(f"o{i}", "b1", f"2026-01-0{i}T00:00:00Z", amount=100) for i in range(1, 6)]
         + [_fulfillment("f1", "o2", "shipped", "2026-01-03T00:00:00Z"), _fulfillment("f2", "o3", "received", "2026-01-04T00:00:00Z")])
    ledger.settle("2026-01-15T00:00:00Z")  # o3 settles (received Jan 4, due Jan 11); o2 is due Jan 20
    return url


def test_listing_is_oldest_first_and_paged(tmp_path):
    url = _store(tmp_path)
    store = Store(url)
    page = pending_receipt(store)
    assert [(r.order_id, r.status, r.due_at) for r in page.items] == [
        ("o1", "awaiting shipment", None), ("o2", "awaiting receipt", "2026-01-20T00:00:00.000000Z"),
        ("o4", "awaiting shipment", None), ("o5", "awaiting shipment", None)]
    assert page.next is None and awaiting_receipt_count(store) == 4
    first = pending_receipt(store, limit=3)
    assert [r.order_id for r in first.items] == ["o1", "o2", "o4"] and first.next == first.items[-1].cursor
    second = pending_receipt(store, after=first.next, limit=3)
    assert [r.order_id for r in second.items] == ["o5"] and second.next is None
    cli = subprocess.run([EXE, "--store", url, "pending-receipt", "--format", "json", "--limit", "2"],
                         capture_output=True, check=True, text=True)
    assert [r["order_id"] for r in json.loads(cli.stdout)] == ["o1", "o2"] and "--after" in cli.stderr


def test_http_listing_and_metric(tmp_path):
    url = _store(tmp_path)
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(f'[[tokens]]\nname = "a"\nrole = "auditor"\nsha256 = "{hashlib.sha256(TOKEN.encode()).hexdigest()}"\n')
    port = free_port()
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen([EXE, "--store", url, "serve", "--port", str(port), "--tokens", str(tokens)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_for_port("127.0.0.1", port, 30)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
        collected, path = [], "/v1/orders?awaiting=receipt&limit=2"
        while path:
            response = client.get(path)
            assert response.status_code == 200, response.text
            collected += [r["order_id"] for r in response.json()]
            link = response.headers.get("link")
            path = link[1:link.index(">")] if link else None
        assert collected == ["o1", "o2", "o4", "o5"]
        assert client.get("/v1/orders").status_code == 400
        assert client.get("/v1/orders?awaiting=receipt&after=zz").status_code == 400
        assert "ledger_orders_awaiting_receipt 4.0" in client.get("/metrics").text
    finally:
        proc.terminate()
        proc.wait(timeout=20)
