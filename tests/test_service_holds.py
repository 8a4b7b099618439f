"""SPEC §16 over HTTP, against a real uvicorn server: the routes, their
statuses, idempotency, the holds page and its protection against cross-site
posts, the order page's hold state, and the metrics."""

from __future__ import annotations

import re
import subprocess

import httpx
import pytest

from devkit.broker import free_port, wait_for_port
from tests.helpers import click, raw
from tests.test_holds import BASE, o
from tests.test_service import AUDITOR, EXE, FINANCE, _tokens_file


class HoldsServer:
    def __init__(self, tmp) -> None:
        self.store = f"sqlite:///{tmp}/ledger.db"
        events = tmp / "events.jsonl"
        events.write_text("".join(raw(e).decode() + "\n" for e in BASE + [o("o1"), o("o2"), o("o3"), click("B2", "s1", "2025-12-01T00:00:00Z"), o("old", buyer="B2", at="2025-12-01T00:01:00Z")]))
        subprocess.run([EXE, "--store", self.store, "ingest", str(events)], check=True, capture_output=True)
        subprocess.run([EXE, "--store", self.store, "settle", "--as-of", "2025-12-31T00:00:00Z"], check=True, capture_output=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "server.log"
        self.proc = subprocess.Popen(
            [EXE, "--store", self.store, "serve", "--port", str(self.port), "--tokens", str(_tokens_file(tmp / "tokens.toml"))],
            stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)
        assert wait_for_port("127.0.0.1", self.port, 30), self.log.read_text()

    def client(self, token: str | None = None, **kw) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kw)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = HoldsServer(tmp_path_factory.mktemp("holds-service"))
    yield srv
    srv.proc.terminate()
    srv.proc.wait(timeout=20)


def post(server, path: str, body: dict, key: str, token: str = FINANCE) -> httpx.Response:
    return server.client(token).post(path, json=body, headers={"Idempotency-Key": key})


def test_hold_routes_statuses_and_idempotency(server):
    first = post(server, "/v1/holds", {"kind": "order", "id": "o1", "reason": "doubt"}, "k1")
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["record"] == {"type": "held", "target": "order", "id": "o1", "actor": "fin-ops", "reason": "doubt"}
    assert body["command_id"] == f"main:{body['position']}"
    again = post(server, "/v1/holds", {"kind": "order", "id": "o1", "reason": "doubt"}, "k1")
    assert (again.status_code, again.json()) == (201, body)  # the first response, nothing recorded twice
    assert post(server, "/v1/holds", {"kind": "order", "id": "o1", "reason": "other"}, "k1").status_code == 409
    assert post(server, "/v1/holds", {"kind": "order", "id": "nope", "reason": "x"}, "k2").status_code == 404
    assert post(server, "/v1/holds", {"kind": "order", "id": "old", "reason": "x"}, "k3").status_code == 409  # settled
    assert post(server, "/v1/holds", {"kind": "shop", "id": "o1", "reason": "x"}, "k4").status_code == 400
    assert post(server, "/v1/holds", {"kind": "order", "id": "o1", "reason": ""}, "k5").status_code == 400
    assert post(server, "/v1/holds", {"kind": "order", "id": "o1"}, "k6").status_code == 400
    assert post(server, "/v1/holds", {"kind": "order", "id": "o1", "reason": "x"}, "k7", AUDITOR).status_code == 403
    assert server.client(FINANCE).post("/v1/holds", json={"kind": "order", "id": "o1", "reason": "x"}).status_code == 400
    assert post(server, "/v1/holds", {"kind": "promoter", "id": "anyone", "reason": "kyc"}, "k8").status_code == 201
    assert post(server, "/v1/releases", {"kind": "order", "id": "o2", "reason": "x"}, "k9").status_code == 409
    assert post(server, "/v1/releases", {"kind": "promoter", "id": "nobody", "reason": "x"}, "k10").status_code == 409
    assert post(server, "/v1/releases", {"kind": "promoter", "id": "anyone", "reason": "ok"}, "k11").status_code == 201
    rejected = post(server, "/v1/rejections", {"order_id": "o3", "reason": "fraud"}, "k12")
    assert rejected.status_code == 201
    assert [(t[0], t[3]) for t in rejected.json()["record"]["transfers"]] == [("reversal", 1500)]
    assert post(server, "/v1/rejections", {"order_id": "o3", "reason": "fraud"}, "k13").status_code == 409
    assert post(server, "/v1/rejections", {"order_id": "nope", "reason": "fraud"}, "k14").status_code == 404
    for token in (FINANCE, AUDITOR):
        listed = server.client(token).get("/v1/holds")
        assert listed.status_code == 200
        assert [(h["kind"], h["id"], h["reasons"], h["actor"]) for h in listed.json()] == [("order", "o1", ["doubt"], "fin-ops")]
    metrics = server.client(AUDITOR).get("/metrics").text
    assert 'ledger_held_orders{reason="hold"} 1' in metrics
    assert 'ledger_held_pending_minor{reason="hold",currency="CNY"} 1500' in metrics
    assert "ledger_held_promoters 0" in metrics


def _logged_in(server, token: str) -> httpx.Client:
    client = server.client(follow_redirects=False)
    assert client.post("/login", data={"token": token}).status_code in (302, 303)
    return client


def test_holds_page_forms_for_finance_read_only_for_auditors_and_no_cross_site_posts(server):
    finance = _logged_in(server, FINANCE)
    page = finance.get("/holds")
    assert page.status_code == 200 and "<form method=post action='/holds'>" in page.text
    token = re.search(r"name=form value='([0-9a-f]+)'", page.text).group(1)
    forged = finance.post("/holds", data={"action": "hold", "kind": "order", "id": "o2", "reason": "x", "form": "0" * 64})
    assert forged.status_code == 403
    cross = finance.post("/holds", data={"action": "hold", "kind": "order", "id": "o2", "reason": "x", "form": token},
                         headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403
    done = finance.post("/holds", data={"action": "hold", "kind": "order", "id": "o2", "reason": "from the page", "form": token})
    assert done.status_code == 303 and done.headers["location"].startswith("/holds?done=main:")
    assert "from the page" in finance.get("/holds").text
    order = finance.get("/orders/o2")
    assert "Hold state: <strong>held</strong>" in order.text
    auditor = _logged_in(server, AUDITOR)
    view = auditor.get("/holds")
    assert view.status_code == 200 and "<form method=post action='/holds'>" not in view.text and "from the page" in view.text
    assert auditor.post("/holds", data={"action": "release", "kind": "order", "id": "o2", "reason": "x"}).status_code == 403


def test_a_payout_over_http_lists_the_held_promoters_lines(server):
    assert post(server, "/v1/holds", {"kind": "promoter", "id": "P", "reason": "kyc"}, "p1").status_code == 201
    paid = server.client(FINANCE).post("/v1/payouts", json={"as_of": "2026-01-01T00:00:00Z"}, headers={"Idempotency-Key": "pay1"})
    assert paid.status_code == 201, paid.text
    assert paid.json()["lines"] == [] and paid.json()["held"] == [{"promoter_id": "P", "currency": "CNY", "payable": 1500}]
    assert post(server, "/v1/releases", {"kind": "promoter", "id": "P", "reason": "ok"}, "p2").status_code == 201
    paid = server.client(FINANCE).post("/v1/payouts", json={"as_of": "2026-01-01T00:00:00Z"}, headers={"Idempotency-Key": "pay2"})
    assert [(x["promoter_id"], x["amount"]) for x in paid.json()["lines"]] == [("P", 1500)] and paid.json()["held"] == []
