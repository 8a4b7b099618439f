"""Issue 19: one test per hole of the service's review (sessions, schema and
doc pages, headers, errors, tokens, idempotency, ids with ``/``, paging in
SQL). The app runs in this process over a real SQLite store."""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.helpers import click, order, share
from tests.test_service import EXE, _in_process

FIN, AUD = {"Authorization": "Bearer finance"}, {"Authorization": "Bearer auditor"}


def _network(promoters: int = 3, busy_orders: int = 0) -> list[dict]:
    """``promoters`` promoters with an order each (ids ``p0``…, ``a/b`` for the
    first, order ``o/0``), and ``busy_orders`` more orders on ``p1``'s share."""
    events = []
    for i in range(promoters):
        pid = "a/b" if i == 0 else f"p{i}"
        events += [share(f"s{i}", pid, "2026-01-01T00:00:00Z"), click(f"b{i}", f"s{i}", "2026-01-02T00:00:00Z"),
                   order("o/0" if i == 0 else f"o{i}", f"b{i}", "2026-01-02T01:00:00Z", amount=10_000 + i)]
    for k in range(busy_orders):
        day = 3 + k % 20
        events += [click(f"x{k}", "s1", f"2026-01-{day:02d}T00:00:00Z"),
                   order(f"x{k}", f"x{k}", f"2026-01-{day:02d}T01:00:00Z", amount=1_000 + k)]
    return events


def _cookie(response) -> str:
    header = response.headers["set-cookie"]
    return header.split(";", 1)[0].split("=", 1)[1]


# ------------------------------------------------------------------ sessions
def test_session_cookie_is_a_server_side_session_not_the_token_and_logout_revokes_it(tmp_path):
    _, client = _in_process(tmp_path, _network(), fin="finance")
    with client:
        login = client.post("/login", data={"token": "finance"}, follow_redirects=False)
        assert login.status_code in (302, 303)
        set_cookie = login.headers["set-cookie"]
        session = _cookie(login)
        assert session != "finance" and "finance" not in set_cookie and len(session) >= 40
        assert "HttpOnly" in set_cookie and "samesite=strict" in set_cookie.lower() and "Max-Age=43200" in set_cookie
        assert "Secure" not in set_cookie  # plain http, not behind TLS
        client.cookies.clear()
        jar = {"ledger_session": session}
        assert client.get("/", cookies=jar, follow_redirects=False).status_code == 200
        # A cookie authenticates reads only: a write needs the token itself.
        body = {"promoter_id": "p1", "currency": "CNY", "amount": 5, "reason": "x"}
        assert client.post("/v1/adjustments", json=body, cookies=jar, headers={"Idempotency-Key": "k1"}).status_code == 401
        out = client.post("/logout", cookies=jar, follow_redirects=False)
        assert out.status_code in (302, 303) and "Max-Age=0" in out.headers["set-cookie"]
        client.cookies.clear()
        after = client.get("/", cookies=jar, follow_redirects=False)
        assert (after.status_code, after.headers["location"]) == (302, "/login")
        assert client.get("/v1/payouts", cookies=jar).status_code == 401
        assert client.post("/v1/adjustments", json=body, cookies=jar, headers={"Idempotency-Key": "k2"}).status_code == 401
        assert client.get("/", cookies={"ledger_session": "finance"}, follow_redirects=False).status_code == 302


def test_sessions_expire_idle_and_absolute_and_follow_their_token(tmp_path):
    from ledger.store import Store
    from projections.tables import database
    from service.auth import Principal
    from service.sessions import Sessions

    now = [1_000_000.0]
    sessions = Sessions(database(Store(f"sqlite:///{tmp_path}/s.db")), idle_s=100, absolute_s=250, clock=lambda: now[0])
    who = Principal("fin", "finance")
    tokens = {hashlib.sha256(b"tok").hexdigest(): who}
    sid = sessions.open("tok")
    now[0] += 99
    assert sessions.principal(sid, tokens) == who  # used within the idle time: kept alive
    now[0] += 99
    assert sessions.principal(sid, tokens) == who
    now[0] += 100
    assert sessions.principal(sid, tokens) is None  # idle 100 s: ended (and deleted)
    now[0] -= 100
    assert sessions.principal(sid, tokens) is None
    sid = sessions.open("tok")
    for _ in range(5):
        now[0] += 60
        seen = sessions.principal(sid, tokens)
    assert seen is None  # 300 s after login, never idle: the absolute limit (250 s) ended it
    sid = sessions.open("tok")
    assert sessions.principal(sid, {}) is None  # its token removed from the tokens file
    assert sessions.principal("not-a-session", tokens) is None


def test_session_cookie_is_secure_behind_tls(tmp_path):
    from litestar.testing import TestClient

    from service.api import create_app
    from service.auth import Principal

    tokens = {hashlib.sha256(b"finance").hexdigest(): Principal("fin", "finance")}
    with TestClient(create_app(f"sqlite:///{tmp_path}/a.db", tokens, behind_tls=True)) as client:
        login = client.post("/login", data={"token": "finance"}, follow_redirects=False)
        assert "Secure" in login.headers["set-cookie"] and login.headers["strict-transport-security"]
    with TestClient(create_app(f"sqlite:///{tmp_path}/b.db", tokens), base_url="https://ledger.example") as client:
        login = client.post("/login", data={"token": "finance"}, follow_redirects=False)
        assert "Secure" in login.headers["set-cookie"]  # the request came over https (e.g. X-Forwarded-Proto)


def test_login_and_logout_check_origin(tmp_path):
    _, client = _in_process(tmp_path, fin="finance")
    with client:
        evil = client.post("/login", data={"token": "finance"}, headers={"Origin": "https://evil.example"},
                           follow_redirects=False)
        assert evil.status_code == 403 and "set-cookie" not in evil.headers
        assert client.post("/login", data={"token": "finance"}, headers={"Origin": "null"},
                           follow_redirects=False).status_code == 403
        ours = client.post("/login", data={"token": "finance"}, headers={"Origin": "http://testserver.local"},
                           follow_redirects=False)
        assert ours.status_code in (302, 303)
        jar = {"ledger_session": _cookie(ours)}
        client.cookies.clear()
        forced = client.post("/logout", cookies=jar, headers={"Origin": "https://evil.example"}, follow_redirects=False)
        assert forced.status_code == 403
        assert client.get("/", cookies=jar, follow_redirects=False).status_code == 200  # still logged in


def test_failed_logins_are_limited_per_client_with_bounded_memory(tmp_path):
    from service.login_limit import FailedLogins

    _, client = _in_process(tmp_path, fin="finance")
    with client:
        for _ in range(10):
            assert client.post("/login", data={"token": "guess"}, follow_redirects=False).status_code == 401
        refused = client.post("/login", data={"token": "finance"}, follow_redirects=False)
        assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 60
        assert "set-cookie" not in refused.headers
    now = [0.0]
    limiter = FailedLogins(failures=2, window_s=10, clients=3, clock=lambda: now[0])
    for i in range(100):
        limiter.failed(f"10.0.0.{i}")
    assert len(limiter) == 3  # at most `clients` addresses remembered
    limiter.failed("10.0.0.99")
    assert limiter.retry_after_s("10.0.0.99") == 10 and limiter.retry_after_s("10.0.0.1") == 0
    now[0] = 10.0
    assert limiter.retry_after_s("10.0.0.99") == 0  # the window ended


# -------------------------------------------------------- schema and headers
def test_schema_needs_a_token_and_no_doc_page_loads_a_script_from_elsewhere(tmp_path):
    _, client = _in_process(tmp_path, fin="finance", aud="auditor", prom="promoter", met="metrics")
    with client:
        assert client.get("/schema/openapi.json").status_code == 401
        assert client.get("/schema").status_code == 401
        for token in ("promoter", "metrics"):
            assert client.get("/schema/openapi.json", headers={"Authorization": f"Bearer {token}"}).status_code == 403
        document = client.get("/schema/openapi.json", headers=AUD)
        assert document.status_code == 200 and document.json()["openapi"].startswith("3.")
        assert client.get("/schema/openapi.json", headers=FIN).status_code == 200
        for page in ("/schema/swagger", "/schema/redoc", "/schema/elements", "/schema/rapidoc", "/schema/scalar"):
            response = client.get(page, headers=AUD)
            assert response.status_code == 404, page
        for path in ("/", "/login", "/promoters/p1", "/dead-letters"):
            html = client.get(path, headers=AUD).text
            sources = re.findall(r"(?:src|href)=['\"]?([^'\" >]+)", html)
            assert sources and all(not urlsplit(s).netloc for s in sources), (path, sources)  # same origin only


def test_security_headers_on_pages_json_and_money_csvs_and_www_authenticate(tmp_path):
    _, client = _in_process(tmp_path, _network(), fin="finance", aud="auditor")
    with client:
        for path in ("/", "/payouts.csv", "/v1/payouts", "/promoters/p1", "/login", "/metrics"):
            response = client.get(path, headers=AUD)
            assert response.status_code == 200, path
            h = response.headers
            assert h["cache-control"] == "no-store", path
            assert h["x-content-type-options"] == "nosniff" and h["x-frame-options"] == "DENY"
            csp = h["content-security-policy"]
            assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        page = client.get("/", headers=AUD).text
        assert "<script>" not in page and "<style>" not in page and " style=" not in page and " on" not in page.replace(" one", "")
        denied = client.get("/v1/payouts")
        assert denied.status_code == 401 and denied.headers["www-authenticate"] == 'Bearer realm="commission-ledger"'
        assert client.get("/assets/style.css").headers["cache-control"] == "no-cache"


# --------------------------------------------------------------------- errors
class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_store_errors_answer_a_generic_line_with_a_reference_detail_in_the_log(tmp_path):
    _, client = _in_process(tmp_path, _network(), fin="finance", prom="promoter")
    caplog = _Kept()
    logging.getLogger("commission_ledger.http").addHandler(caplog)
    with client:
        assert client.get("/v1/me", headers={"Authorization": "Bearer promoter"}).status_code == 200
        with sqlite3.connect(tmp_path / "ledger.db") as db:
            db.execute("ALTER TABLE rm_balances RENAME TO rm_balances_gone")
        try:
            for headers in ({"Authorization": "Bearer promoter"}, FIN):
                response = client.get("/v1/me" if "promoter" in headers["Authorization"] else "/v1/payouts", headers=headers)
                assert response.status_code == 503
                body = response.json()
                assert set(body) == {"error", "ref"} and body["error"] == f"the store is unavailable (ref {body['ref']})"
                assert str(tmp_path) not in response.text and "rm_balances" not in response.text
                assert any(body["ref"] in r.getMessage() and "rm_balances" in r.getMessage() for r in caplog.records)
            page = client.get("/", headers=FIN)
            assert page.status_code == 503 and str(tmp_path) not in page.text and "no such table" not in page.text
        finally:
            logging.getLogger("commission_ledger.http").removeHandler(caplog)


# --------------------------------------------------------------------- tokens
def _write_tokens(path: Path, *entries: tuple[str, str, str]) -> Path:
    path.write_text("".join(f'[[tokens]]\nname = "{n}"\nrole = "{r}"\nsha256 = "{hashlib.sha256(t.encode()).hexdigest()}"\n\n'
                            for n, r, t in entries))
    return path


def test_tokens_duplicate_digests_and_unreadable_files_are_one_line_errors_exit_2(tmp_path):
    from service.auth import TokensError, load_tokens

    twice = _write_tokens(tmp_path / "twice.toml", ("a", "finance", "same"), ("b", "auditor", "same"))
    with pytest.raises(TokensError, match="same sha256"):
        load_tokens(str(twice))
    with pytest.raises(TokensError, match="cannot read"):
        load_tokens(str(tmp_path))
    for path in (twice, tmp_path):
        done = subprocess.run([EXE, "--store", f"sqlite:///{tmp_path}/x.db", "serve", "--tokens", str(path)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr


def test_metrics_role_reads_metrics_only(tmp_path):
    app, client = _in_process(tmp_path, _network(), met="metrics")
    scraper = {"Authorization": "Bearer metrics"}
    with client:
        assert client.get("/metrics", headers=scraper).status_code == 200
        for path in ("/v1/payouts", "/v1/promoters/p1/statement", "/v1/dead-letters", "/", "/payouts.csv", "/v1/me"):
            assert client.get(path, headers=scraper).status_code == 403, path
        assert client.post("/login", data={"token": "metrics"}, follow_redirects=False).status_code == 401


# ---------------------------------------------------------------- idempotency
def test_idempotency_keys_are_per_caller_and_bodies_compare_as_json(tmp_path):
    _, client = _in_process(tmp_path, _network(), fin="finance", fin2="finance")
    second = {"Authorization": "Bearer finance"}  # the same token: one caller
    with client:
        from litestar.testing import TestClient  # noqa: F401

        a = b'{"promoter_id": "p1", "currency": "CNY", "amount": 5, "reason": "x"}'
        b = b'{"reason":"x","amount":5,\n "currency":"CNY","promoter_id":"p1"}'
        first = client.post("/v1/adjustments", content=a, headers={**FIN, "Idempotency-Key": "k"})
        again = client.post("/v1/adjustments", content=b, headers={**second, "Idempotency-Key": "k"})
        assert first.status_code == again.status_code == 201 and first.content == again.content
        duplicate = b'{"promoter_id": "p1", "currency": "CNY", "amount": 5, "amount": 500000, "reason": "x"}'
        refused = client.post("/v1/adjustments", content=duplicate, headers={**FIN, "Idempotency-Key": "d"})
        assert refused.status_code == 400 and refused.json() == {"error": "duplicate key 'amount' in the JSON body"}


def test_two_finance_users_do_not_share_idempotency_keys(tmp_path):
    from litestar.testing import TestClient

    from service.api import create_app
    from service.auth import Principal
    from tests.helpers import feed, new_ledger

    store = f"sqlite:///{tmp_path}/ledger.db"
    feed(new_ledger(store_url=store), _network())
    tokens = {hashlib.sha256(t.encode()).hexdigest(): Principal(n, "finance") for n, t in (("ann", "t1"), ("bob", "t2"))}
    with TestClient(create_app(store, tokens)) as client:
        def p1_total() -> int:
            rows = client.get("/v1/payouts", headers={"Authorization": "Bearer t1"}).json()
            return sum(r["pending"] + r["payable"] + r["paid"] for r in rows if r["promoter_id"] == "p1")

        before = p1_total()
        body = {"promoter_id": "p1", "currency": "CNY", "amount": 5, "reason": "x"}
        ann = client.post("/v1/adjustments", json=body, headers={"Authorization": "Bearer t1", "Idempotency-Key": "k"})
        bob = client.post("/v1/adjustments", json={**body, "amount": 7},
                          headers={"Authorization": "Bearer t2", "Idempotency-Key": "k"})
        assert (ann.status_code, bob.status_code) == (201, 201)
        assert ann.content != bob.content and p1_total() == before + 5 + 7  # two adjustments, not one answered twice


# -------------------------------------------------------------- ids with "/"
def test_ids_with_a_slash_are_reachable_and_linked(tmp_path):
    _, client = _in_process(tmp_path, _network(), aud="auditor", prom="promoter")
    with client:
        statement = client.get("/v1/statement", params={"promoter_id": "a/b"}, headers=AUD)
        assert statement.status_code == 200 and [e["order_id"] for e in statement.json()] == ["o/0"]
        explained = client.get("/v1/explanation", params={"order_id": "o/0"}, headers=AUD)
        assert explained.status_code == 200 and explained.json()["order_id"] == "o/0"
        balances = client.get("/", headers=AUD).text
        assert "href='/promoter?id=a%2Fb'" in balances
        page = client.get("/promoter?id=a%2Fb", headers=AUD)
        assert page.status_code == 200 and "<h1>Promoter a/b</h1>" in page.text and "href='/order?id=o%2F0'" in page.text
        order_page = client.get("/order?id=o%2F0", headers=AUD)
        assert order_page.status_code == 200 and "Unknown order" not in order_page.text
        # A promoter reads its own statement by query too, no one else's.
        mine = client.get("/v1/statement", params={"promoter_id": "p1"}, headers={"Authorization": "Bearer promoter"})
        other = client.get("/v1/statement", params={"promoter_id": "a/b"}, headers={"Authorization": "Bearer promoter"})
        assert (mine.status_code, other.status_code) == (200, 403)


# --------------------------------------------------------------------- paging
def test_balances_page_and_csv_are_paged_in_sql(tmp_path):
    _, client = _in_process(tmp_path, _network(promoters=130), aud="auditor")
    with client:
        api = client.get("/v1/payouts", headers=AUD).json()
        assert len(api) == 130
        first = client.get("/", headers=AUD).text
        assert first.count("<tr><td><a href=") == 100 and "130 rows, 100 on this page" in first
        following = re.search(r"href='(/\?after=[^']+)' rel=next", first).group(1).replace("&amp;", "&")
        second = client.get(following, headers=AUD).text
        assert second.count("<tr><td><a href=") == 30 and "rel=next" not in second
        shown = re.findall(r"<tr><td><a href='[^']+'>([^<]+)</a>", first + second)
        assert shown == [r["promoter_id"] for r in api]
        csv = client.get("/payouts.csv", headers=AUD).text.splitlines()
        assert csv[0] == "promoter_id,currency,pending,payable,paid" and len(csv) == 131
        assert [line.split(",")[0] for line in csv[1:]] == [r["promoter_id"] for r in api]
        assert client.get("/?currency=HKD", headers=AUD).text.count("<tr><td><a href=") == 0


def test_balances_csv_streams_in_chunks(tmp_path, monkeypatch):
    from service import pages

    monkeypatch.setattr(pages, "CSV_CHUNK_ROWS", 7)
    _, client = _in_process(tmp_path, _network(promoters=30), aud="auditor")
    with client:
        lines = client.get("/payouts.csv", headers=AUD).text.splitlines()
        api = client.get("/v1/payouts", headers=AUD).json()
    assert len(lines) == 31 and lines.count("promoter_id,currency,pending,payable,paid") == 1
    assert [line.split(",")[0] for line in lines[1:]] == [r["promoter_id"] for r in api]


def test_currency_filter_and_currencies_use_the_index(tmp_path):
    from ledger.store import Store
    from projections import readmodels
    from projections.tables import database

    _in_process(tmp_path, _network(promoters=5), aud="auditor")
    store = Store(f"sqlite:///{tmp_path}/ledger.db")
    assert readmodels.currencies(store) == ["CNY"] and readmodels.balance_rows(store) == 5
    with database(store).read() as c:
        plan = " ".join(str(r) for r in c.execute("EXPLAIN QUERY PLAN SELECT promoter_id FROM rm_balances b "
                                                 "WHERE b.currency = ? ORDER BY b.promoter_id, b.currency", ("CNY",)).fetchall())
    assert "rm_balances_currency" in plan


def test_merchant_statement_is_paged_with_totals_of_every_order(tmp_path):
    _, client = _in_process(tmp_path, _network(promoters=12), aud="auditor")
    with client:
        whole = client.get("/v1/merchants/m1/statement", headers=AUD).json()
        assert len(whole["orders"]) == 12 and set(whole) == {"merchant_id", "orders", "totals"}
        collected, url = [], "/v1/merchants/m1/statement?limit=5"
        while url:
            response = client.get(url, headers=AUD)
            view = response.json()
            assert view["totals"] == whole["totals"] and len(view["orders"]) <= 5
            collected += view["orders"]
            link = response.headers.get("link")
            url = link[1:link.index(">")] if link else None
        assert collected == whole["orders"]
        summed = client.get("/v1/merchants/m1/statement?from=2000-01-01T00:00:00Z", headers=AUD).json()["totals"]
        assert summed == whole["totals"] and whole["totals"][0]["accrued_minor"] > 0  # kept = summed
        assert client.get("/v1/merchants/m1/statement?after=nonsense", headers=AUD).status_code == 400
        by_query = client.get("/v1/merchant-statement", params={"merchant_id": "m1"}, headers=AUD).json()
        assert by_query == whole


def test_dead_letters_are_capped_per_item_with_the_whole_payload_on_its_own_route(tmp_path):
    big = b'{"type": "order", "event_id": "big", "note": "' + b"x" * 300_000 + b'"'  # not JSON: dead-lettered
    _, client = _in_process(tmp_path, [*_network(), big, b"{}"], aud="auditor")
    with client:
        response = client.get("/v1/dead-letters", headers=AUD)
        letters = response.json()
        assert len(response.content) < 20_000
        bigs = [d for d in letters if d["raw_size"] == len(big)]
        assert len(bigs) == 1 and bigs[0]["raw_truncated"] is True and len(bigs[0]["raw"]) == 1024
        assert all(not d["raw_truncated"] for d in letters if d is not bigs[0])
        raw = client.get(f"/v1/dead-letters/{bigs[0]['n']}/raw", headers=AUD)
        assert raw.status_code == 200 and raw.content == big
        assert client.get("/v1/dead-letters/999/raw", headers=AUD).status_code == 404
        page = client.get("/dead-letters", headers=AUD).text
        assert len(page) < 20_000 and f"/v1/dead-letters/{bigs[0]['n']}/raw" in page


def test_promoter_chart_has_a_bounded_number_of_points_ending_at_the_balance(tmp_path, monkeypatch):
    from service import pages

    monkeypatch.setattr(pages, "CHART_POINTS", 20)
    _, client = _in_process(tmp_path, _network(busy_orders=120), aud="auditor")
    with client:
        page = client.get("/promoters/p1", headers=AUD).text
        balance = next(r for r in client.get("/v1/payouts", headers=AUD).json() if r["promoter_id"] == "p1")
        entries = client.get("/v1/promoters/p1/statement", headers=AUD).json()
    assert len(entries) == 121
    polylines = re.findall(r"points='([^']+)'", page)
    assert len(polylines) == 3 and all(len(p.split()) <= 2 * 20 + 2 for p in polylines)
    assert f"{balance['pending']:,}" in page  # the chart's range reaches the current pending balance


def test_metrics_report_kept_counts(tmp_path):
    _, client = _in_process(tmp_path, _network(promoters=7), aud="auditor")
    with client:
        text = client.get("/metrics", headers=AUD).text
    assert re.search(r"^ledger_balance_rows 7\.0$", text, re.M)


def test_sessions_and_merchant_totals_on_postgres(postgres_url):
    """The sessions table and the kept merchant totals on PostgreSQL: the app
    over a PostgreSQL store, logged in through a session, a merchant with an
    id holding a NUL (escaped in PostgreSQL text)."""
    from litestar.testing import TestClient

    from service.api import create_app
    from service.auth import Principal
    from tests.helpers import feed, new_ledger

    events = _network(promoters=4)
    events[2]["merchant_id"] = "m\x00x"
    feed(new_ledger(store_url=postgres_url), events)
    tokens = {hashlib.sha256(b"auditor").hexdigest(): Principal("aud", "auditor")}
    with TestClient(create_app(postgres_url, tokens)) as client:
        login = client.post("/login", data={"token": "auditor"}, follow_redirects=False)
        jar = {"ledger_session": _cookie(login)}
        client.cookies.clear()
        assert client.get("/", cookies=jar, follow_redirects=False).status_code == 200
        client.post("/logout", cookies=jar)
        client.cookies.clear()
        assert client.get("/", cookies=jar, follow_redirects=False).status_code == 302
        for merchant in ("m1", "m\x00x"):
            whole = client.get("/v1/merchant-statement", params={"merchant_id": merchant}, headers=AUD).json()
            summed = client.get("/v1/merchant-statement", params={"merchant_id": merchant, "from": "2000-01-01T00:00:00Z"},
                                headers=AUD).json()
            assert whole["orders"] and whole["totals"] == summed["totals"], merchant


def test_payouts_json_built_by_sqlite_is_msgspecs_bytes(tmp_path):
    """GET /v1/payouts' JSON comes from SQLite's json functions: the same
    bytes as msgspec's encoding of the rows, ids with quotes, control
    characters, NUL and non-ASCII included; pages and cursors the same."""
    import msgspec

    from ledger.store import Store
    from projections import readmodels

    events = _network(promoters=9)
    for i, hostile in enumerate(['q"\\/<', "nul\x00x\x1f\n\t", "é😀\u2028", "a|b"]):
        events[3 * (i + 1)]["promoter_id"] = hostile
    _in_process(tmp_path, events, aud="auditor")
    store = Store(f"sqlite:///{tmp_path}/ledger.db")
    for window in ({}, {"recorded_until_us": 2**62}):
        for limit in (1, 2, 4, 9, 10, 50):
            after = None
            while True:
                body, following = readmodels.balances_json(store, after=after, limit=limit, **window)
                page = readmodels.balances(store, after=after, limit=limit, **window)
                assert body == msgspec.json.encode(page.items) and following == page.next, (limit, after)
                if following is None:
                    break
                promoter, _, currency = following.rpartition("|")
                after = (promoter, currency)
