"""The HTTP service against a real uvicorn server on a free loopback port."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from devkit.broker import free_port, wait_for_port
from devkit.synthetic import write_jsonl

EXE = os.path.join(os.path.dirname(sys.executable), "commission-ledger")
FINANCE, AUDITOR = "fin-secret-token", "audit-secret-token"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


def _tokens_file(path: Path) -> Path:
    path.write_text(
        "".join(
            f'[[tokens]]\nname = "{name}"\nrole = "{role}"\nsha256 = "{hashlib.sha256(token.encode()).hexdigest()}"\n\n'
            for name, role, token in (("fin-ops", "finance", FINANCE), ("auditor-1", "auditor", AUDITOR))
        )
    )
    return path


class Server:
    def __init__(self, tmp: Path) -> None:
        self.store = f"sqlite:///{tmp}/ledger.db"
        self.events = tmp / "events.jsonl"
        write_jsonl(str(self.events), 3_000, seed=4)
        subprocess.run([EXE, "--store", self.store, "ingest", str(self.events)], check=True, capture_output=True)
        subprocess.run([EXE, "--store", self.store, "settle", "--as-of", "2026-03-01T00:00:00Z"], check=True, capture_output=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "server.log"
        self.proc = subprocess.Popen(
            [EXE, "--store", self.store, "serve", "--port", str(self.port), "--tokens", str(_tokens_file(tmp / "tokens.toml"))],
            stdout=open(self.log, "wb"), stderr=subprocess.STDOUT,
        )
        assert wait_for_port("127.0.0.1", self.port, 30), self.log.read_text()

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=20)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("service"))
    yield srv
    srv.stop()
    log = srv.log.read_text()
    assert FINANCE not in log and AUDITOR not in log, "a token reached the log"


READS = ["/v1/payouts", "/v1/promoters/p1/statement", "/v1/orders/o1/explanation", "/v1/dead-letters",
         "/v1/audit/digest", "/metrics"]


@pytest.mark.parametrize("path", READS)
def test_reads_need_a_token_and_both_roles_may_read(server, path):
    assert server.client().get(path).status_code == 401
    assert server.client("wrong-token").get(path).status_code == 401
    for token in (AUDITOR, FINANCE):
        response = server.client(token).get(path)
        assert response.status_code in (200, 404), response.text  # o1 may be unknown in this stream
    assert server.client().get("/healthz").json() == {"status": "ok"}


def test_writes_are_finance_only_and_need_an_idempotency_key(server):
    body = {"promoter_id": "p1", "currency": "CNY", "amount": 10, "reason": "test"}
    assert server.client().post("/v1/adjustments", json=body).status_code == 401
    assert server.client(AUDITOR).post("/v1/adjustments", json=body, headers={"Idempotency-Key": "a0"}).status_code == 403
    assert server.client(AUDITOR).post("/v1/payouts", json={"as_of": "2026-03-01T00:00:00Z"}, headers={"Idempotency-Key": "p0"}).status_code == 403
    missing = server.client(FINANCE).post("/v1/adjustments", json=body)
    assert missing.status_code == 400 and "Idempotency-Key" in missing.json()["error"]


@pytest.mark.parametrize("raw,needle", [
    (b'{"promoter_id": "p1", "currency": "CNY", "amount": 10, "reason": "x"', "malformed JSON"),
    (b'[1,2]', "Expected `object`"),
    (b'{"promoter_id": "p1", "currency": "CNY", "amount": "10", "reason": "x"}', "Expected `int`"),
    (b'{"promoter_id": "p1", "currency": "cny", "amount": 10, "reason": "x"}', "three capital letters"),
    (b'{"promoter_id": "p1", "currency": "CNY", "amount": 0, "reason": "x"}', "non-zero"),
    (b'\xff\xfe', "malformed JSON"),
])
def test_bad_bodies_are_400_with_one_line(server, raw, needle):
    response = server.client(FINANCE).post("/v1/adjustments", content=raw, headers={"Idempotency-Key": f"bad-{hash(raw)}",
                                                                                   "Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert needle in error and "\n" not in error


@pytest.mark.parametrize("path", ["/v1/dead-letters?after=9223372036854775808",
                                  "/v1/promoters/p1/statement?after=99999999999999999999",
                                  "/payout-batches/9223372036854775808"])
def test_a_cursor_past_a_bigint_is_400_not_a_500(server, path):
    response = server.client(FINANCE).get(path)
    assert response.status_code == 400, response.text
    assert "must be 0 to 2^63" in response.text


def test_oversized_body_is_rejected_not_a_500(server):
    response = server.client(FINANCE).post("/v1/payouts", content=b"{" + b" " * 100_000 + b"}",
                                           headers={"Idempotency-Key": "big", "Content-Type": "application/json"})
    assert response.status_code == 413 and "too large" in response.json()["error"]


def test_payouts_paginate_with_link_headers(server):
    client = server.client(AUDITOR)
    everything = client.get("/v1/payouts").json()
    cli = subprocess.run([EXE, "--store", server.store, "payouts", "--format", "json"], capture_output=True, check=True)
    assert everything == json.loads(cli.stdout)  # same array as the CLI
    collected, url = [], "/v1/payouts?limit=7"
    while url:
        response = client.get(url)
        collected += response.json()
        link = response.headers.get("link")
        url = link[1:link.index(">")] if link else None
    assert collected == everything and len(everything) > 7
    cny = client.get("/v1/payouts?currency=CNY").json()
    assert cny == [r for r in everything if r["currency"] == "CNY"]


def test_idempotency_same_key_same_response_other_body_409(server):
    client = server.client(FINANCE)
    body = {"promoter_id": "carol", "currency": "CNY", "amount": 500, "reason": "welcome bonus"}
    first = client.post("/v1/adjustments", json=body, headers={"Idempotency-Key": "adj-1"})
    again = client.post("/v1/adjustments", json=body, headers={"Idempotency-Key": "adj-1"})
    assert first.status_code == again.status_code == 201 and first.content == again.content
    other = client.post("/v1/adjustments", json={**body, "amount": 501}, headers={"Idempotency-Key": "adj-1"})
    assert other.status_code == 409
    statement = client.get("/v1/promoters/carol/statement").json()
    assert [(e["kind"], e["amount_minor"], e["payable"], e["cause"]) for e in statement] == [
        ("adjustment", 500, 500, "adjustment by fin-ops: welcome bonus")]
    for promoter in ("carol", "p1", "p2"):
        cli = subprocess.run([EXE, "--store", server.store, "statement", promoter, "--format", "json"], capture_output=True, check=True)
        assert client.get(f"/v1/promoters/{promoter}/statement").json() == json.loads(cli.stdout)
    audit = subprocess.run([EXE, "--store", server.store, "audit", "replay"], capture_output=True, text=True)
    assert audit.returncode == 0
    digest = client.get("/v1/audit/digest").json()  # the audit just completed, not one run in the request
    last = digest["last_audit"]
    assert last["ok"] is True and last["reexecuted"] is True and f"digest {last['digest']}" in audit.stdout
    assert [h["line"] for h in digest["current_heads"]] == [l for l in audit.stdout.splitlines() if l.startswith("head ")]


def test_twenty_concurrent_payouts_pay_each_balance_once(server):
    client = server.client(AUDITOR)
    before = {(r["promoter_id"], r["currency"]): r["payable"] for r in client.get("/v1/payouts").json()}
    due = sum(v for v in before.values() if v >= 100)
    assert due > 0
    responses: list[httpx.Response] = []

    def pay(i: int) -> None:
        with server.client(FINANCE) as c:
            responses.append(c.post("/v1/payouts", json={"as_of": "2026-03-02T00:00:00Z"}, headers={"Idempotency-Key": f"pay-{i}"}))

    threads = [threading.Thread(target=pay, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in responses] == [201] * 20
    paid = [line for r in responses for line in r.json()["lines"]]
    assert sum(line["amount"] for line in paid) == due
    assert len({(line["promoter_id"], line["currency"]) for line in paid}) == len(paid)
    for line in paid:
        assert line["carried_over"] + sum(e["amount_minor"] for e in line["entries"]) == line["amount"]


def test_payout_batch_csv_from_the_page_is_what_the_payout_returned(server):
    """The balances page lists recorded payouts; each CSV link gives the batch
    exactly as ``payout --format csv`` renders it (the lines the payout returned)."""
    import re

    import msgspec

    from projections.payout_batch import BatchLine, render_batch

    finance = server.client(FINANCE)
    adjust = {"promoter_id": "batchy", "currency": "CNY", "amount": 5_000, "reason": "batch test"}
    assert finance.post("/v1/adjustments", json=adjust, headers={"Idempotency-Key": "batch-adj"}).status_code == 201
    paid = finance.post("/v1/payouts", json={"as_of": "2026-04-01T00:00:00Z"}, headers={"Idempotency-Key": "batch-pay"})
    assert paid.status_code == 201
    lines = msgspec.convert(paid.json()["lines"], list[BatchLine])
    assert ("batchy", "CNY", 5_000) in {(x.promoter_id, x.currency, x.amount_minor) for x in lines}
    page = server.client(AUDITOR).get("/").text
    newest = re.search(r"<tr><td>2026-04-01T00:00:00Z</td>.*?href='(/payout-batches/\d+)'", page)
    assert newest, page[:2000]
    csv = server.client(AUDITOR).get(newest.group(1))
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.text == render_batch(lines, "csv")
    assert csv.text.splitlines()[0] == "promoter_id,currency,amount,as_of,carried_over,entry_count,entries"
    assert server.client(AUDITOR).get("/payout-batches/999999").status_code == 404
    assert server.client().get(newest.group(1), follow_redirects=False).status_code in (302, 303, 401)


def test_metrics_parse_and_move_when_events_are_ingested(server, tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    def scrape() -> dict[str, float]:
        text = server.client(AUDITOR).get("/metrics").text
        return {s.name + json.dumps(s.labels, sort_keys=True): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    before = scrape()
    extra = tmp_path / "more.jsonl"
    extra.write_text('{"type":"share","event_id":"m-1","occurred_at":"2026-05-01T00:00:00Z","share_id":"zz","promoter_id":"zed"}\n'
                     '{"type":"nope","event_id":"m-2"}\n')
    subprocess.run([EXE, "--store", server.store, "ingest", str(extra)], check=True, capture_output=True)
    after = scrape()
    assert after["ledger_store_position{}"] > before["ledger_store_position{}"]
    assert after.get('ledger_dead_letters_total{"reason": "unknown_type"}', 0) == before.get('ledger_dead_letters_total{"reason": "unknown_type"}', 0) + 1


def test_explanations_follow_new_events(server, tmp_path):
    """The service replays each journal once and then only catches up: an order
    ingested after the first explanation, and a later refund of it, show up."""
    client = server.client(AUDITOR)
    assert client.get("/v1/orders/xo1/explanation").status_code == 404  # replays the journal, caches it

    def ingest(name: str, *events: dict) -> None:
        path = tmp_path / name
        path.write_text("".join(json.dumps(e) + "\n" for e in events))
        subprocess.run([EXE, "--store", server.store, "ingest", str(path)], check=True, capture_output=True)

    ingest("order.jsonl",
           {"type": "share", "event_id": "x-s", "occurred_at": "2026-06-01T00:00:00Z", "share_id": "xs1", "promoter_id": "xp"},
           {"type": "click", "event_id": "x-c", "occurred_at": "2026-06-01T01:00:00Z", "buyer_id": "xb", "share_id": "xs1"},
           {"type": "order", "event_id": "x-o", "occurred_at": "2026-06-01T02:00:00Z", "order_id": "xo1", "buyer_id": "xb",
            "merchant_id": "m1", "lines": [{"sku": "k", "quantity": 1, "unit_price": 10_000}]})
    view = client.get("/v1/orders/xo1/explanation").json()
    assert (view["level1"]["promoter_id"], view["level1"]["before_refunds"]) == ("xp", 1_500)
    assert [(t["kind"], t["amount_minor"]) for t in view["transfers"]] == [("accrual", 1_500)]
    ingest("refund.jsonl", {"type": "refund", "event_id": "x-r", "occurred_at": "2026-06-02T00:00:00Z", "refund_id": "xr1",
                            "order_id": "xo1", "buyer_id": "xb", "amount": 5_000})
    view = client.get("/v1/orders/xo1/explanation").json()
    assert view["after_refunds"]["level1"] == 750 and view["refunded_total"] == 5_000
    assert [(t["kind"], t["amount_minor"]) for t in view["transfers"]] == [("accrual", 1_500), ("reversal", 750)]


def _in_process(tmp_path: Path, events: list[dict] | None = None, **roles: str):
    """The app in this process (no uvicorn) over a store holding ``events``;
    one token per role, the token being the role's name (a promoter is ``p1``)."""
    from litestar.testing import TestClient

    from service.api import create_app
    from service.auth import Principal
    from tests.helpers import feed, new_ledger

    store = f"sqlite:///{tmp_path}/ledger.db"
    if events:
        feed(new_ledger(store_url=store), events)
    tokens = {hashlib.sha256(role.encode()).hexdigest(): Principal(name, role, "p1" if role == "promoter" else None)
              for name, role in roles.items()}
    app = create_app(store, tokens)
    return app, TestClient(app)


def _walkable(path: str, promoter: str = "p1") -> str:
    return (path.replace(":str}", "}").replace("{position:int}", "1").replace("{n:int}", "1")
            .format(promoter_id=promoter, order_id="o1", merchant_id="m1"))


# What a promoter token may do: its own rows, its own statement, its own page.
PROMOTER_MAY = {("GET", "/v1/me"), ("GET", "/v1/promoters/p1/statement"), ("GET", "/me")}


def test_every_route_is_closed_unless_public_and_guarded_by_role(tmp_path):
    """Authentication is a middleware, so a route needs a token unless it opts out;
    roles are checked by guards: finance reads and writes, an auditor reads, a
    promoter reaches only its own views (every other route: 403, JSON for the
    API, an error page for the pages), and a promoter's view is for promoters."""
    app, client = _in_process(tmp_path, fin="finance", aud="auditor", prom="promoter")
    public = {"/healthz", "/login", "/logout", "/assets/{name:str}"}
    checked = 0
    with client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/login").status_code == 200 and client.get("/assets/sort.js").status_code == 200
        assert client.get("/schema/openapi.json").status_code == 401  # the schema: finance and auditors
        assert client.get("/schema/openapi.json", headers={"Authorization": "Bearer promoter"}).status_code == 403
        assert client.get("/schema/openapi.json", headers={"Authorization": "Bearer auditor"}).status_code == 200
        for route in app.routes:
            if route.path in public or route.path.startswith("/schema"):
                continue
            path = _walkable(route.path)
            api = path.startswith("/v1/") or path == "/metrics"
            for method in sorted(route.methods - {"OPTIONS", "HEAD"}):
                anonymous = client.request(method, path, follow_redirects=False)
                if api:
                    assert (anonymous.status_code, anonymous.json()) == (401, {"error": "missing or unknown token"})
                else:
                    assert (anonymous.status_code, anonymous.headers["location"]) == (302, "/login")
                promoter = client.request(method, path, headers={"Authorization": "Bearer promoter"}, follow_redirects=False)
                if (method, path) in PROMOTER_MAY:
                    assert promoter.status_code == 200, (method, path, promoter.text)
                    for role in ("finance", "auditor"):  # a promoter's own view is no one else's
                        if path in ("/v1/me", "/me"):
                            assert client.get(path, headers={"Authorization": f"Bearer {role}"}).status_code == 403
                    if "{promoter_id" in route.path:  # another promoter's: refused
                        other = client.request(method, _walkable(route.path, "p2"), headers={"Authorization": "Bearer promoter"})
                        assert other.status_code == 403
                else:
                    assert promoter.status_code == 403, (method, path)
                    if api:
                        assert promoter.json() == {"error": "role promoter may not do this"}
                    else:
                        assert "My earnings" in promoter.text and "Dead letters" not in promoter.text
                if method == "POST":
                    auditor = client.post(path, json={}, headers={"Authorization": "Bearer auditor", "Idempotency-Key": "k"})
                    assert auditor.status_code == 403
                checked += 1
    assert checked == 30  # 19 API routes (14 reads, 5 writes: holds add 4, pending receipt 1) and 11 pages (holds: 2)


def test_promoter_token_reads_its_own_rows_statement_and_page(tmp_path):
    from tests.helpers import click, order, share

    events = [share("s1", "p1", "2026-01-01T00:00:00Z"), share("s2", "p2", "2026-01-01T00:00:00Z", parent="s1"),
              click("b1", "s2", "2026-01-02T00:00:00Z"), order("o1", "b1", "2026-01-02T01:00:00Z", amount=10_000),
              click("b2", "s1", "2026-01-02T00:00:00Z"), order("o2", "b2", "2026-01-02T02:00:00Z", amount=4_000, currency="HKD")]
    _, client = _in_process(tmp_path, events, fin="finance", prom="promoter")
    promoter, finance = {"Authorization": "Bearer promoter"}, {"Authorization": "Bearer finance"}
    with client:
        everything = client.get("/v1/payouts", headers=finance).json()
        mine = client.get("/v1/me", headers=promoter).json()
        assert mine == [r for r in everything if r["promoter_id"] == "p1"] and len(mine) == 2  # CNY (level 2) and HKD
        statement = client.get("/v1/promoters/p1/statement", headers=promoter)
        assert statement.json() == client.get("/v1/promoters/p1/statement", headers=finance).json()
        assert [(e["order_id"], e["level"]) for e in statement.json()] == [("o1", 2), ("o2", 1)]
        assert client.get("/v1/promoters/p2/statement", headers=promoter).status_code == 403
        assert client.get("/v1/orders/o1/explanation", headers=promoter).status_code == 403
        page = client.get("/me", headers=promoter)
        assert page.status_code == 200 and "My earnings (p1)" in page.text and page.text.count("<svg") == 2
        assert "id=my-balances" in page.text and "href='/orders/" not in page.text  # explanations are not theirs
        login = client.post("/login", data={"token": "promoter"}, follow_redirects=False)
        assert login.status_code in (302, 303) and login.headers["location"] == "/me"


def test_statements_and_dead_letters_page_with_link_headers(server):
    client = server.client(AUDITOR)
    busy = max(client.get("/v1/payouts").json(), key=lambda r: r["pending"] + r["payable"] + r["paid"])["promoter_id"]
    everything = client.get(f"/v1/promoters/{busy}/statement").json()
    assert len(everything) > 5
    collected, url = [], f"/v1/promoters/{busy}/statement?limit=5"
    while url:
        response = client.get(url)
        collected += response.json()
        link = response.headers.get("link")
        url = link[1:link.index(">")] if link else None
    assert collected == everything
    cli = subprocess.run([EXE, "--store", server.store, "statement", busy, "--format", "json", "--after", "5", "--limit", "3"],
                         capture_output=True, check=True)
    assert json.loads(cli.stdout) == everything[5:8] and cli.stderr.decode().strip() == "(more: --after 8)"
    letters = client.get("/v1/dead-letters").json()
    first = client.get("/v1/dead-letters?limit=2")
    assert first.json() == letters[:2] and 'after=2' in first.headers["link"]
    assert client.get("/v1/dead-letters?after=2").json() == letters[2:]


def test_merchant_statement_api_and_cli_agree(server):
    client = server.client(AUDITOR)
    view = client.get("/v1/merchants/m3/statement").json()
    cli = subprocess.run([EXE, "--store", server.store, "merchant-statement", "m3", "--format", "json"],
                         capture_output=True, check=True)
    assert view == json.loads(cli.stdout) and view["orders"] and set(view) == {"merchant_id", "orders", "totals"}
    assert set(view["orders"][0]) == {"order_id", "currency", "accrued_minor", "reversed_minor", "net_minor", "settled",
                                      "groups"}
    # --from is inclusive, --to exclusive: two windows meeting at one instant split the orders.
    early = client.get("/v1/merchants/m3/statement?to=2026-01-02T08:00:00%2B08:00").json()["orders"]
    late = client.get("/v1/merchants/m3/statement?from=2026-01-02T00:00:00Z").json()["orders"]
    assert early and late and early + late == view["orders"]
    assert client.get("/v1/merchants/m3/statement?from=yesterday").status_code == 400
    # The totals kept by the projector (no period) are the sums over the orders (a period: summed in SQL).
    assert client.get("/v1/merchants/m3/statement?from=2000-01-01T00:00:00Z").json()["totals"] == view["totals"]
    assert any(t["reversed_minor"] for t in view["totals"])
    assert server.client(FINANCE).get("/v1/merchants/m3/statement").json() == view


def test_pages_escape_what_they_show(tmp_path):
    _, client = _in_process(tmp_path, fin="finance")
    hostile = "<img src=x onerror=alert(1)>'\"&"
    with client:
        finance = {"Authorization": "Bearer finance"}
        body = {"promoter_id": hostile, "currency": "CNY", "amount": 700, "reason": "<b>bonus</b>"}
        assert client.post("/v1/adjustments", json=body, headers={**finance, "Idempotency-Key": "x"}).status_code == 201
        balances = client.get("/", headers=finance).text
        promoter = client.get("/promoters/" + quote(hostile, safe=""), headers=finance).text
        unknown = client.get("/orders/%3Cscript%3E", headers=finance).text
    assert "<img" not in balances and "&lt;img src=x onerror=alert(1)&gt;&#39;&#34;&amp;" in balances
    assert f"href='/promoters/{quote(hostile, safe='')}'" in balances
    assert "<img" not in promoter and "<b>" not in promoter and "&lt;b&gt;bonus&lt;/b&gt;" in promoter
    assert "<h1>Promoter &lt;img" in promoter and "<svg" in promoter
    assert unknown.count("<script") == 1 and "<h1>Order &lt;script&gt;</h1>" in unknown  # the one script: the sorter
    assert "<script src='/assets/sort.js'></script>" in unknown


@pytest.mark.skipif(shutil.which("chromedriver") is None or shutil.which("chromium") is None,
                    reason="Debian chromium + chromium-driver are installed by scripts/install.sh")
def test_payout_page_in_a_real_browser(server):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as ChromeService
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1366,900"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=ChromeService(shutil.which("chromedriver")), options=options)
    try:
        driver.get(server.url + "/")
        assert "/login" in driver.current_url  # not logged in: sent to the form
        driver.find_element(By.NAME, "token").send_keys(AUDITOR)
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
        wait = WebDriverWait(driver, 30)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#balances tbody tr"))
        rows = driver.find_elements(By.CSS_SELECTOR, "#balances tbody tr")
        api = server.client(AUDITOR).get("/v1/payouts").json()
        assert len(rows) == len(api)
        first = rows[0].find_elements(By.TAG_NAME, "td")
        assert [c.text for c in first[:2]] == [api[0]["promoter_id"], api[0]["currency"]]
        assert int(first[4].text.replace(",", "")) == api[0]["paid"]
        cookie = driver.get_cookie("ledger_session")
        assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "payouts-page.png"))
        first[0].find_element(By.TAG_NAME, "a").click()
        wait.until(lambda d: d.find_element(By.TAG_NAME, "h1").text.startswith("Promoter"))
        assert driver.find_element(By.TAG_NAME, "h1").text == f"Promoter {api[0]['promoter_id']}"
        assert driver.find_elements(By.TAG_NAME, "svg")
        driver.save_screenshot(str(ARTIFACTS / "promoter-page.png"))
        # A promoter with orders in two currencies: one chart per currency, over event time.
        busy = max(api, key=lambda r: r["paid"] + r["payable"] + r["pending"])["promoter_id"]
        currencies = {e["currency"] for e in server.client(AUDITOR).get(f"/v1/promoters/{busy}/statement").json()}
        driver.get(f"{server.url}/promoters/{busy}")
        wait.until(lambda d: d.find_element(By.TAG_NAME, "h1").text == f"Promoter {busy}")
        charts = driver.find_elements(By.TAG_NAME, "svg")
        assert sorted(c.get_attribute("aria-label") for c in charts) == sorted(f"{c} balances over event time" for c in currencies)
        driver.save_screenshot(str(ARTIFACTS / "promoter-busy.png"))
    finally:
        driver.quit()
