"""The read-model tables (projections.tables / projector / readmodels): equal to
folds of the log, caught up with tracking, safe when catch-ups race and after
SIGKILL; time travel; the order history of explanations; the merchant
statement's reconciliation (SPEC §13); PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from devkit.synthetic import generate
from ledger.app import Ledger
from ledger.books import Books
from ledger.config import Rules
from ledger.records import Ingested, Source, cause_of, fold_transfer, record_transfers
from ledger.store import JournalStore, Store
from projections import projector, readmodels
from projections.statements import StatementEntry
from projections.tables import PROJECTOR, database
from schemas.timestamps import format_timestamp_us, parse_timestamp_us
from tests.helpers import click, feed, new_ledger, order, refund, share

EXE = os.path.join(os.path.dirname(sys.executable), "commission-ledger")
RM_TABLES = ("rm_tracking", "rm_counts", "rm_segments", "rm_balances", "rm_balance_history", "rm_promoters",
             "rm_statement", "rm_orders", "rm_dead_letters", "rm_payouts", "rm_payout_lines")


def build(url: str, events: int = 6_000, seed: int = 3, batch: int = 300, settle_again: bool = True,
          rules: Rules | None = None) -> Store:
    """A realistic store: a synthetic stream (refunds, late and duplicate
    events, malformed lines) in small batches (many segments), settled and paid
    out midway; the first half's refunds arrive after that and claw back paid
    commission; settled and paid again."""
    lines = list(generate(events, seed=seed, rules14=rules is not None))
    ledger = new_ledger(rules, store_url=url)
    half = len(lines) // 2
    first = [line for line in lines[:half] if not line.startswith(b'{"type":"refund"')]
    later = [line for line in lines[:half] if line.startswith(b'{"type":"refund"')] + lines[half:]
    ledger.ingest(((raw, Source(file="s", line=i)) for i, raw in enumerate(first, 1)), batch_events=batch)
    books = Books(ledger.store.store)
    books.settle("2026-01-20T00:00:00Z")
    readmodels.pay_out(books, "2026-01-20T00:00:00Z")
    ledger.catch_up()
    ledger.ingest(((raw, Source(file="s", line=i)) for i, raw in enumerate(later, half + 1)), batch_events=batch)
    if settle_again:
        books.settle("2026-03-01T00:00:00Z")
    readmodels.pay_out(books, "2026-03-01T00:00:00Z")
    return books.store


def reference_statements(store: Store, until_position: int | None = None) -> dict[str, list[StatementEntry]]:
    """Statements folded from the log the way the pre-table code did: each
    order's instant read from its raw JSON."""
    order_at: dict[tuple[str, str], int] = {}
    running: dict[tuple[str, str], list[int]] = {}
    level1: dict[tuple[str, str], str] = {}  # the order's latest level-1 accrual's promoter
    out: dict[str, list[StatementEntry]] = {}
    for journal, position, record in Books(store).records(until_position=until_position):
        when = getattr(record, "as_of_us", None)
        if isinstance(record, Ingested):
            event = json.loads(record.raw)
            when = parse_timestamp_us(event["occurred_at"])
            if event["type"] == "order":
                order_at.setdefault((journal, event["order_id"]), when)
        named = dict(getattr(record, "groups", []))
        taken_from: dict[str, str] = {}  # order → level-1 promoter whose commission this record took back
        for i, t in enumerate(record_transfers(record)):
            at = when
            order_us = order_at.get((journal, t.order_id)) if t.order_id else None
            if order_us is not None and (at is None or order_us > at):
                at = order_us
            row = fold_transfer(running, t)
            group = None  # SPEC §14: the entry's commission group (its level-1 promoter)
            if t.order_id is not None and t.level == 1:
                group = t.promoter_id
                if t.debit == "expense":
                    level1[(journal, t.order_id)] = t.promoter_id
                elif t.credit == "expense":
                    taken_from[t.order_id] = t.promoter_id
            elif t.order_id is not None and t.level == 2:
                group = named.get(i) or (taken_from.get(t.order_id) if t.credit == "expense" else None) \
                    or level1.get((journal, t.order_id))
            out.setdefault(t.promoter_id, []).append(StatementEntry(
                journal, position, t.kind, t.currency, t.amount_minor, t.debit, t.credit, t.order_id, t.level,
                t.rules_version, cause_of(record), *row, format_timestamp_us(at) if at is not None else None, group))
    return out


def copy(url: str, path: str) -> str:
    """A consistent copy of a SQLite store (its WAL included); its URL."""
    with sqlite3.connect(url[len("sqlite:///"):]) as source, sqlite3.connect(path) as target:
        source.backup(target)
    return f"sqlite:///{path}"


def dump(url: str) -> dict[str, list]:
    """Every row of every read-model table (SQLite)."""
    with sqlite3.connect(url[len("sqlite:///"):]) as db:
        return {table: sorted(db.execute(f"SELECT * FROM {table}").fetchall(), key=repr) for table in RM_TABLES}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('rm')}/ledger.db"
    return url, build(url)


def test_tables_equal_folds_of_the_log_now_and_at_every_position(built):
    url, store = built
    store = Store(url)  # a fresh object: its own database connections, catching up nothing
    books = Books(store)
    assert readmodels.balance_map(store) == books.balances()
    reference = reference_statements(store)
    assert sum(len(v) for v in reference.values()) > 5_000
    for promoter, entries in reference.items():
        assert readmodels.statement(store, promoter).items == entries
    assert any(e.kind == "clawback" for entries in reference.values() for e in entries)
    positions = [n for n, _, _, _ in store.notifications()]
    assert len(positions) > 20
    for n in positions[::3] + [0, positions[-1] + 5]:
        assert readmodels.balance_map(store, until_position=n) == books.balances(until_position=n), n
    n = positions[len(positions) // 2]
    then = reference_statements(store, until_position=n)
    for promoter in list(reference)[:40]:
        assert readmodels.statement(store, promoter, until_position=n).items == then.get(promoter, [])
    # --as-of: the longest prefix of segments recorded at or before TS.
    with database(store).read() as c:
        recorded = [us for (us,) in c.execute("SELECT recorded_us FROM rm_segments ORDER BY store_position").fetchall()]
    for ts in recorded[::7] + [recorded[0] - 1, recorded[-1]]:
        assert readmodels.balance_map(store, recorded_until_us=ts) == books.balances(recorded_until_us=ts)


def test_pages_concatenate_to_the_whole(built):
    url, store = built
    busy = max(reference_statements(store).items(), key=lambda kv: len(kv[1]))[0]
    whole = readmodels.statement(store, busy).items
    collected, after = [], 0
    while True:
        page = readmodels.statement(store, busy, after=after, limit=7)
        collected += page.items
        if page.next is None:
            break
        after = int(page.next)
    assert collected == whole and len(whole) > 14
    letters = readmodels.dead_letters(store).items
    assert letters and readmodels.dead_letters(store, after=1, limit=2).items == letters[1:3]
    rows = readmodels.balances(store).items
    page = readmodels.balances(store, limit=10)
    assert page.items == rows[:10] and page.next == f"{rows[9].promoter_id}|{rows[9].currency}"
    assert readmodels.balances(store, after=(rows[9].promoter_id, rows[9].currency), limit=10).items == rows[10:20]


def test_payout_batches_reconcile_and_follow_the_payable_entries(built):
    url, store = built
    payouts, count = readmodels.recorded_payouts(store, 10)
    assert count == 2 and [p.position for p in payouts] == sorted((p.position for p in payouts), reverse=True)
    for recorded in payouts:
        lines = readmodels.payout_batch(store, recorded.position)
        assert lines and len(lines) == recorded.lines
        assert [(c, sum(x.amount_minor for x in lines if x.currency == c)) for c in sorted({x.currency for x in lines})] == recorded.totals
        for line in lines:  # every entry is one of the promoter's payable entries before this payout
            assert line.carried_over_minor + sum(e.amount_minor for e in line.entries) == line.amount_minor
            assert all(e.kind in ("settlement", "clawback", "adjustment") for e in line.entries)
    assert readmodels.payout_batch(store, 10**9) is None


def test_order_history_is_what_explain_reads_from_the_journal(tmp_path):
    """For every order: order_history equals explain's _journal_facts over the
    journal's segments (transfers, rejected refunds — parked ones released as
    rejected too — and the raw order event)."""
    from projections.explain import Explainer, _journal_facts

    url = f"sqlite:///{tmp_path}/ledger.db"
    ledger = new_ledger(store_url=url)
    feed(ledger, [
        share("s1", "p1", "2026-01-01T00:00:00Z"), share("s2", "p2", "2026-01-01T00:00:00Z", parent="s1"),
        refund("r0", "o1", "b1", 99_999, "2026-01-02T03:00:00Z"),  # parked, then rejected when o1 arrives
        click("b1", "s2", "2026-01-02T00:00:00Z"), order("o1", "b1", "2026-01-02T01:00:00Z", amount=10_000),
        refund("r1", "o1", "someone-else", 100, "2026-01-02T02:00:00Z"),  # buyer mismatch
        refund("r2", "o1", "b1", 4_000, "2026-01-02T02:00:00Z"),
        click("b1", "s1", "2026-01-02T00:30:00Z", event_id="late"),  # re-attributes o1 to p1
        order("o2", "b2", "2026-01-03T00:00:00Z", amount=500),  # unattributed
    ])
    Books(Store(url)).settle("2026-02-01T00:00:00Z")
    feed(Ledger(JournalStore(url)), [refund("r3", "o1", "b1", 7_000, "2026-02-02T00:00:00Z")])  # exceeds: rejected
    feed(Ledger(JournalStore(url)), list(generate(2_000, seed=9)))
    store = Store(url)
    reader = Ledger(JournalStore(store))
    records = list(reader.records())
    order_ids = [r.order_id for _, r in records if isinstance(r, Ingested) and r.order_id is not None and r.outcome != "duplicate"]
    checked = 0
    for order_id in order_ids:
        state = reader.engine.orders.get(order_id)
        expected = _journal_facts(records, state)
        assert readmodels.order_history(store, "main", order_id) == expected, order_id
        checked += 1
    raw, history, rejected = readmodels.order_history(store, "main", "o1")
    assert json.loads(raw)["order_id"] == "o1" and [r["reason"] for r in rejected] == [
        "refund_exceeds_order", "refund_buyer_mismatch", "refund_exceeds_order"]
    assert "settlement" in [h["kind"] for h in history] and checked > 500
    assert readmodels.order_history(store, "main", "nope") == (None, [], [])


def test_merchant_statements_reconcile_with_promoter_balances(tmp_path):
    """SPEC §13: without adjustments, Σ over merchants of net_minor equals Σ over
    promoters of pending + payable + paid, per currency — on a synthetic stream
    with refunds, clawbacks after settlement, settles and payouts."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    store = build(url, events=8_000, seed=5, settle_again=False)
    kinds = {e.kind for entries in reference_statements(store).values() for e in entries}
    assert {"accrual", "reversal", "settlement", "clawback", "payout"} <= kinds
    promoters: dict[str, int] = {}
    for (_, currency), row in Books(store).balances().items():
        promoters[currency] = promoters.get(currency, 0) + sum(row)
    with database(store).read() as c:
        merchants = [m for (m,) in c.execute("SELECT DISTINCT merchant_id FROM rm_orders WHERE merchant_id IS NOT NULL").fetchall()]
    nets: dict[str, int] = {}
    settled = unsettled = 0
    for merchant in merchants:
        view = readmodels.merchant_statement(store, merchant)
        assert view["totals"] == readmodels.merchant_totals(view["orders"])
        for o in view["orders"]:
            assert o["net_minor"] == o["accrued_minor"] - o["reversed_minor"]
            settled, unsettled = settled + o["settled"], unsettled + (not o["settled"])
        for total in view["totals"]:
            nets[total["currency"]] = nets.get(total["currency"], 0) + total["net_minor"]
    assert nets == promoters and set(nets) == {"CNY", "HKD"} and len(merchants) == 50
    assert settled and unsettled
    # --from/--to select orders by occurred_at: from inclusive, to exclusive.
    view = readmodels.merchant_statement(store, merchants[0])
    with database(store).read() as c:
        instants = [us for (us,) in c.execute("SELECT occurred_us FROM rm_orders WHERE merchant_id = ? ORDER BY occurred_us",
                                              (merchants[0],)).fetchall()]
    cut = instants[len(instants) // 2]  # an order's own instant: it falls in the later window
    early = readmodels.merchant_statement(store, merchants[0], to_us=cut)["orders"]
    late = readmodels.merchant_statement(store, merchants[0], from_us=cut)["orders"]
    assert early and late and early + late == view["orders"]


def test_merchant_statement_cli(capsys, tmp_path):
    from cli.main import main

    url = f"sqlite:///{tmp_path}/ledger.db"
    feed(new_ledger(store_url=url), [
        share("s1", "p1", "2026-01-01T00:00:00Z"), click("b1", "s1", "2026-01-02T00:00:00Z"),
        order("o1", "b1", "2026-01-02T01:00:00Z", amount=10_000, merchant_id="=m"),
        order("o2", "b1", "2026-01-03T01:00:00Z", amount=2_000, merchant_id="=m", currency="HKD"),
        refund("r1", "o1", "b1", 2_500, "2026-01-04T00:00:00Z"),
    ])
    assert main(["--store", url, "merchant-statement", "=m", "--format", "json", "--from", "2026-01-02T09:00:00+08:00"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "merchant_id": "=m",
        "orders": [
            {"order_id": "o1", "currency": "CNY", "accrued_minor": 1_500, "reversed_minor": 375, "net_minor": 1_125, "settled": False,
             "groups": ["p1"]},
            {"order_id": "o2", "currency": "HKD", "accrued_minor": 300, "reversed_minor": 0, "net_minor": 300, "settled": False,
             "groups": ["p1"]},
        ],
        "totals": [{"currency": "CNY", "accrued_minor": 1_500, "reversed_minor": 375, "net_minor": 1_125},
                   {"currency": "HKD", "accrued_minor": 300, "reversed_minor": 0, "net_minor": 300}],
    }
    main(["--store", url, "settle", "--as-of", "2026-01-17T01:00:00Z"])
    capsys.readouterr()
    assert main(["--store", url, "merchant-statement", "=m", "--format", "csv", "--to", "2026-01-03T00:00:00Z"]) == 0
    assert capsys.readouterr().out == ("order_id,currency,accrued_minor,reversed_minor,net_minor,settled,groups\n"
                                       "o1,CNY,1500,375,1125,true,p1\n,CNY,1500,375,1125,,\n")
    assert main(["--store", url, "merchant-statement", "=m"]) == 0
    table = capsys.readouterr().out
    assert table.startswith("merchant =m\norder_id") and "totals\ncurrency" in table
    assert main(["--store", url, "merchant-statement", "=m", "--from", "soon"]) == 2


def test_concurrent_catch_ups_never_apply_a_segment_twice(tmp_path, monkeypatch):
    """Threads with their own Store objects (each its own connections and
    lock: only the compare-and-set keeps them apart) catch up one chunk at a
    time, all at once; the tables equal a single catch-up's."""
    monkeypatch.setattr(projector, "CHUNK_SEGMENTS", 1)
    url = f"sqlite:///{tmp_path}/ledger.db"
    lines = list(generate(3_000, seed=4))
    ledger = new_ledger(store_url=url)
    ledger.ingest(((raw, Source(file="s", line=i)) for i, raw in enumerate(lines, 1)), batch_events=100)
    Books(Store(url)).settle("2026-03-01T00:00:00Z")
    results, errors = [], []

    def catch_up() -> None:
        try:
            results.append(projector.catch_up(Store(url)))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=catch_up) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sum(r.segments for r in results) == len(list(Store(url).notifications()))  # each segment folded once
    racing = dump(url)
    other = copy(url, f"{tmp_path}/alone.db")
    with sqlite3.connect(other[len("sqlite:///"):]) as db:
        for table in RM_TABLES:
            db.execute(f"DROP TABLE {table}")
    projector.catch_up(Store(other))
    assert dump(other) == racing


def test_processes_racing_and_a_sigkill_mid_catch_up_leave_the_tables_of_a_clean_catch_up(tmp_path):
    """``project`` SIGKILLed during its first catch-up, then three of them at
    once: the tables equal those of one uninterrupted catch-up."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    lines = list(generate(30_000, seed=6))
    ledger = new_ledger(store_url=url)
    ledger.ingest(((raw, Source(file="s", line=i)) for i, raw in enumerate(lines, 1)), batch_events=100)
    path = url[len("sqlite:///"):]
    clean = copy(url, f"{tmp_path}/clean.db")
    subprocess.run([EXE, "--store", clean, "project"], check=True, capture_output=True)
    last = max(n for n, _, _, _ in Store(url).notifications())
    proc = subprocess.Popen([EXE, "--store", url, "project"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    position = 0
    deadline = time.monotonic() + 60
    while position == 0 and time.monotonic() < deadline:  # wait for the first chunk, then kill
        time.sleep(0.05)
        with sqlite3.connect(path) as db:
            try:
                position = db.execute("SELECT position FROM rm_tracking WHERE name = ?", (PROJECTOR,)).fetchone()[0]
            except (sqlite3.OperationalError, TypeError):
                position = 0
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 0 < position < last  # killed midway
    racers = [subprocess.Popen([EXE, "--store", url, "project"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
              for _ in range(3)]
    assert [p.wait(timeout=300) for p in racers] == [0, 0, 0]
    assert dump(url) == dump(clean)


def test_a_schema_change_rebuilds_the_tables(tmp_path):
    url = f"sqlite:///{tmp_path}/ledger.db"
    feed(new_ledger(store_url=url), list(generate(1_000, seed=2)))
    before = readmodels.balance_map(Store(url))
    with sqlite3.connect(url[len("sqlite:///"):]) as db:
        db.execute("UPDATE rm_tracking SET name = 'readmodels/v1'")
        db.execute("DELETE FROM rm_balances")
    assert readmodels.balance_map(Store(url)) == before
    with sqlite3.connect(url[len("sqlite:///"):]) as db:
        assert db.execute("SELECT name FROM rm_tracking").fetchall() == [(PROJECTOR,)]


def test_memory_stores_each_own_their_tables():
    first, second = new_ledger(), new_ledger()
    feed(first, [share("s1", "p1", "2026-01-01T00:00:00Z"), click("b1", "s1", "2026-01-02T00:00:00Z"),
                 order("o1", "b1", "2026-01-02T01:00:00Z")])
    assert [r.promoter_id for r in readmodels.balances(first.store.store).items] == ["p1"]
    assert readmodels.balances(second.store.store).items == []


def test_postgres_tables_equal_sqlite_including_nul_in_ids(postgres_url, tmp_path):
    """Same events, same answers on PostgreSQL and SQLite — ids with NUL and
    \\x01 included (PostgreSQL text cannot hold NUL: escaped in order) — and
    sorted by code point on both."""
    events = list(generate(2_000, seed=8)) + [
        share("n1", "p\x00a", "2026-01-01T00:00:00Z"), share("n2", "p\x01b", "2026-01-01T00:00:00Z"),
        share("n3", "p\x02", "2026-01-01T00:00:00Z"), share("n4", "pé", "2026-01-01T00:00:00Z"),
        share("n5", "p", "2026-01-01T00:00:00Z"),
        *[click(f"nb{i}", f"n{i}", "2026-01-02T00:00:00Z") for i in range(1, 6)],
        *[order(f"no{i}\x00", f"nb{i}", "2026-01-02T01:00:00Z", merchant_id="m\x00") for i in range(1, 6)],
        b'{"type": "click", "event_id": "x\\u0000y"}',
    ]
    answers = []
    for url in (f"sqlite:///{tmp_path}/ledger.db", postgres_url):
        ledger = new_ledger(store_url=url)
        feed(ledger, events)
        books = Books(ledger.store.store)
        books.settle("2026-02-01T00:00:00Z")
        readmodels.pay_out(books, "2026-02-01T00:00:00Z")
        store = Store(url)
        rows = readmodels.balances(store).items
        answers.append((
            rows, {p: readmodels.statement(store, p).items for p in ("p\x00a", "p\x01b", "p3")},
            readmodels.dead_letters(store).items, readmodels.merchant_statement(store, "m\x00"),
            readmodels.balance_map(store, until_position=5),
        ))
        assert readmodels.balance_map(store) == books.balances()
        ids = [r.promoter_id for r in rows]
        assert ids == sorted(ids) and "p\x00a" in ids and "p\x01b" in ids
    assert answers[0] == answers[1]


def test_project_follow_keeps_up_and_stops_on_sigterm(tmp_path):
    url = f"sqlite:///{tmp_path}/ledger.db"
    ledger = new_ledger(store_url=url)
    feed(ledger, [share("s1", "p1", "2026-01-01T00:00:00Z")])
    proc = subprocess.Popen([EXE, "--store", url, "project", "--follow", "--every", "0.1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        feed(ledger, [click("b1", "s1", "2026-01-02T00:00:00Z"), order("o1", "b1", "2026-01-02T01:00:00Z")])
        last = max(n for n, _, _, _ in Store(url).notifications())
        deadline = time.monotonic() + 60
        while projector.tracked_position(database(Store(url))) != last and time.monotonic() < deadline:
            time.sleep(0.1)
        assert projector.tracked_position(database(Store(url))) == last
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and f"read models at store position {last}" in out, err
    assert readmodels.balance_map(Store(url)) == {("p1", "CNY"): [1_500, 0, 0]}


def test_groups_under_scope_product_are_those_of_the_records(tmp_path):
    """SPEC §14 (issue 20): on the §14 synthetic stream under scope = "product",
    every statement's groups equal a fold of the log (level 1: its promoter;
    level 2: the group its record names), every level-2 order entry has one,
    and a merchant statement's groups are the groups of the order's entries
    with a positive net (a re-attributed order's old group is not listed)."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    store = build(url, events=6_000, seed=11, rules=Rules(scope="product"))
    reference = reference_statements(store)
    level2 = [e for entries in reference.values() for e in entries if e.level == 2]
    assert len(level2) > 100 and all(e.group for e in level2)
    for promoter, entries in reference.items():
        assert readmodels.statement(store, promoter).items == entries
    net: dict[tuple[str, str], dict[str, int]] = {}
    for entries in reference.values():
        for e in entries:
            if e.order_id is not None and e.group is not None:
                sign = 1 if e.debit == "expense" else -1 if e.credit == "expense" else 0
                groups = net.setdefault((e.journal, e.order_id), {})
                groups[e.group] = groups.get(e.group, 0) + sign * e.amount_minor
    with database(store).read() as c:
        merchants = [m for (m,) in c.execute("SELECT DISTINCT merchant_id FROM rm_orders WHERE merchant_id IS NOT NULL").fetchall()]
        journal_of = dict(c.execute("SELECT order_id, journal FROM rm_orders").fetchall())
    listed = moved = 0
    for merchant in merchants:
        for o in readmodels.merchant_statement(store, merchant)["orders"]:
            groups = net.get((journal_of[o["order_id"]], o["order_id"]), {})
            assert o["groups"] == sorted(g for g, n in groups.items() if n > 0)
            listed += 1
            moved += len(groups) > len(o["groups"])  # a group that was taken back (re-attributed) is not listed
    assert listed > 500 and moved > 20
