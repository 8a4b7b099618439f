"""The journal store (SQLite), integrity on replay, concurrent writers, and the CLI."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from ledger.app import Ledger
from ledger.errors import IntegrityError
from cli.main import main
from ledger.records import Ingested, PaidOut, decode_segment, encode_segment, fold_records, frame, genesis, unframe
from ledger.store import JournalStore
from tests.helpers import adjust, click, feed, new_ledger, order, payout, refund, share

ROOT = Path(__file__).resolve().parent.parent

EVENTS = [
    share("A", "alice", "2026-01-01T00:00:00Z"),
    share("B", "bob", "2026-01-01T01:00:00Z", parent="A"),
    click("u1", "B", "2026-01-02T00:00:00Z", event_id="c1"),
    order("O1", "u1", "2026-01-02T01:00:00Z", amount=20_000),
    refund("R1", "O1", "u1", 5_000, "2026-01-03T00:00:00Z"),
    click("u2", "A", "2026-01-04T00:00:00+08:00", event_id="c2"),
    order("O2", "u2", "2026-01-04T01:00:00Z", amount=1_000, currency="HKD"),
]


@pytest.fixture
def jsonl(tmp_path):
    path = tmp_path / "events.jsonl"
    lines = [json.dumps(e) for e in EVENTS] + ['{"type": "click", "event_id": ', json.dumps(EVENTS[0])]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def store(tmp_path):
    return f"sqlite:///{tmp_path}/ledger.db"


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_ingest_prints_counts_and_payouts_json(capsys, jsonl, store):
    code, out, _ = cli(capsys, "--store", store, "ingest", str(jsonl))
    assert code == 0
    assert out.splitlines()[0] == "accepted=7 duplicates=1 parked=0 dead_letters=1"
    code, out, _ = cli(capsys, "--store", store, "payouts", "--format", "json")
    assert code == 0
    # O1: C=20000, L1=3000 (bob), L2=1000 (alice), refund 5000 → ×3/4; O2 (HKD): alice L1 150.
    assert json.loads(out) == [
        {"promoter_id": "alice", "currency": "CNY", "pending": 750, "payable": 0, "paid": 0},
        {"promoter_id": "alice", "currency": "HKD", "pending": 150, "payable": 0, "paid": 0},
        {"promoter_id": "bob", "currency": "CNY", "pending": 2250, "payable": 0, "paid": 0},
    ]


def test_settle_payout_statement_and_formats(capsys, jsonl, store):
    cli(capsys, "--store", store, "ingest", str(jsonl))
    code, out, _ = cli(capsys, "--store", store, "settle", "--as-of", "2026-01-17T01:00:00Z")
    assert code == 0 and out.startswith("settled 1 orders")  # O1 only: O2 + 15d is later
    code, out, _ = cli(capsys, "--store", store, "payout", "--as-of", "2026-01-17T01:00:00Z", "--format", "csv")
    assert out == (
        "promoter_id,currency,amount,as_of,carried_over,entry_count,entries\n"
        "alice,CNY,750,2026-01-17T01:00:00Z,0,1,settlement O1 L2 +750@main:11\n"
        "bob,CNY,2250,2026-01-17T01:00:00Z,0,1,settlement O1 L1 +2250@main:11\n"
    )
    code, out, _ = cli(capsys, "--store", store, "payouts", "--format", "json", "--currency", "CNY")
    assert json.loads(out) == [
        {"promoter_id": "alice", "currency": "CNY", "pending": 0, "payable": 0, "paid": 750},
        {"promoter_id": "bob", "currency": "CNY", "pending": 0, "payable": 0, "paid": 2250},
    ]
    code, out, _ = cli(capsys, "--store", store, "statement", "bob", "--format", "json")
    entries = json.loads(out)
    assert [(e["kind"], e["amount_minor"], e["order_id"], e["level"], e["rules_version"]) for e in entries] == [
        ("accrual", 3000, "O1", 1, 1),
        ("reversal", 750, "O1", 1, 1),
        ("settlement", 2250, "O1", 1, 1),
        ("payout", 2250, None, None, 1),
    ]
    assert entries[-1]["paid"] == 2250 and entries[-1]["payable"] == 0
    code, out, _ = cli(capsys, "--store", store, "payouts")
    assert out.splitlines()[0].split() == ["promoter_id", "currency", "pending", "payable", "paid"]


def test_explain_names_winner_upline_and_amounts(capsys, jsonl, store):
    cli(capsys, "--store", store, "ingest", str(jsonl))
    code, out, _ = cli(capsys, "--store", store, "explain", "O1", "--format", "json")
    view = json.loads(out)
    assert code == 0
    assert view["winner"]["event_id"] == "c1" and view["level1"]["promoter_id"] == "bob"
    assert view["level2"]["promoter_id"] == "alice" and view["level2"]["bound_by_share"] == "B"
    assert view["commissionable"] == 20_000 and view["order_cap"]["K"] == 6_000
    assert view["after_refunds"]["level1"] == 2250 and view["after_refunds"]["level2"] == 750
    assert [t["kind"] for t in view["transfers"]] == ["accrual", "accrual", "reversal", "reversal"]
    code, out, _ = cli(capsys, "--store", store, "explain", "O1")
    assert "winner:" in out and "level1:" in out
    code, _, err = cli(capsys, "--store", store, "explain", "nope")
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_dead_letters_json_keeps_raw_and_source(capsys, jsonl, store):
    cli(capsys, "--store", store, "ingest", str(jsonl))
    code, out, _ = cli(capsys, "--store", store, "dead-letters", "--format", "json")
    rows = json.loads(out)
    assert [(r["reason"], r["source"], r["raw"]) for r in rows] == [
        ("malformed_json", f"{jsonl}:8", '{"type": "click", "event_id": ')
    ]


def test_adjustment_moves_payable_with_actor_and_reason(capsys, store):
    code, out, _ = cli(capsys, "--store", store, "adjust", "carol", "CNY", "-300", "--reason", "duplicate bonus", "--actor", "fin-ops")
    assert code == 0
    code, out, _ = cli(capsys, "--store", store, "statement", "carol", "--format", "json")
    [entry] = json.loads(out)
    assert (entry["kind"], entry["amount_minor"], entry["payable"]) == ("adjustment", 300, -300)
    assert entry["cause"] == "adjustment by fin-ops: duplicate bonus"
    code, _, err = cli(capsys, "--store", store, "adjust", "carol", "CNY", "0", "--reason", "x")
    assert code == 2 and "non-zero" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["settle", "--as-of", "yesterday"],
        ["payouts", "--format", "xml"],
        ["frobnicate"],
        ["--store", "mysql://x", "payouts"],
        ["ingest", "/no/such/file.jsonl"],
        ["ingest", "--batch-events", "0", "-"],
        ["consume", "--bootstrap-servers", "127.0.0.1:1", "--max-poll-records", "0"],
    ],
)
def test_bad_usage_exits_2_with_one_line(capsys, store, argv):
    if "--store" not in argv:
        argv = ["--store", store, *argv]
    code, _, err = cli(capsys, *argv)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("commission-ledger")


def test_bad_config_writes_nothing(capsys, tmp_path, jsonl, store):
    bad = tmp_path / "rules.toml"
    bad.write_text('[commission]\nlevel3_rate_bp = 100\n')
    code, _, err = cli(capsys, "--store", store, "--config", str(bad), "ingest", str(jsonl))
    assert code == 2 and "third" in err
    code, out, _ = cli(capsys, "--store", store, "payouts", "--format", "json")
    assert json.loads(out) == []
    assert Ledger(JournalStore(store)).version == 0


def test_rules_recorded_once_and_versioned(capsys, tmp_path, jsonl, store):
    rules = tmp_path / "rules.toml"
    rules.write_text('[commission]\nlevel1_rate_bp = 1000\n')
    cli(capsys, "--store", store, "--config", str(rules), "ingest", str(jsonl))
    cli(capsys, "--store", store, "--config", str(rules), "settle", "--as-of", "2026-01-05T00:00:00Z")
    kinds = [type(r).__name__ for _, r in Ledger(JournalStore(store)).records()]
    assert kinds.count("RulesAdopted") == 1
    code, out, _ = cli(capsys, "--store", store, "payouts", "--format", "json")
    assert json.loads(out)[2] == {"promoter_id": "bob", "currency": "CNY", "pending": 1500, "payable": 0, "paid": 0}


def test_reopened_store_replays_and_continues(store):
    ledger = new_ledger(store_url=store)
    feed(ledger, EVENTS[:4])
    again = Ledger(JournalStore(store))
    assert again.position == ledger.position and list(again.records()) == list(ledger.records())
    feed(again, EVENTS[4:] + EVENTS[:1])  # the last one is a redelivery
    counts = feed(Ledger(JournalStore(store)), EVENTS)
    assert (counts.accepted, counts.duplicates) == (0, len(EVENTS))


def tamper(store: str, event_id: str, edit, *, rechain: bool = False) -> None:
    """Edit the stored record of ``event_id`` directly in the SQLite file. The
    segment keeps the chain hash it carries, unless ``rechain``: then every
    segment's hash is recomputed, as a forger who knows the format would."""
    with sqlite3.connect(store[len("sqlite:///"):]) as db:
        rows = db.execute("SELECT originator_id, originator_version, state FROM stored_events "
                          "WHERE topic='commission_ledger.Segment' ORDER BY originator_id, originator_version").fetchall()
        heads: dict[str, bytes] = {}
        for journal_id, version, state in rows:
            segment = decode_segment(state)
            records = [edit(r) if isinstance(r, Ingested) and r.event_id == event_id else r for r in segment.records]
            payload = encode_segment(msgspec.structs.replace(segment, records=records))
            name = journal_id.removeprefix("journal:")
            if rechain:
                data, heads[name] = frame(heads.get(name, genesis(name)), payload)
            else:
                data = state[:len(state) - len(unframe(state)[1])] + payload
            db.execute("UPDATE stored_events SET state=? WHERE originator_id=? AND originator_version=?", (data, journal_id, version))


def _inflate(record: Ingested) -> Ingested:
    forged = json.loads(record.raw)
    forged["lines"][0]["unit_price"] = 2_000_000  # inflate the order
    return msgspec.structs.replace(record, raw=json.dumps(forged).encode())


def test_tampered_payload_breaks_the_chain(capsys, store, jsonl):
    cli(capsys, "--store", store, "ingest", str(jsonl))
    tamper(store, "e-O1", _inflate)
    code, out, err = cli(capsys, "--store", store, "audit", "replay")
    assert code == 1
    assert "FAIL journal main segment 2: chain link broken (this segment or one before it was changed)" in out
    assert err.startswith("commission-ledger: audit failed: journal main segment 2") and len(err.splitlines()) == 1
    code, _, err = cli(capsys, "--store", store, "settle", "--as-of", "2026-03-01T00:00:00Z")
    assert code == 1 and "integrity error" in err and "chain link broken" in err  # no write on a broken head


def _edit_payout(store: str, *, rechain: bool) -> None:
    """Add 1,000 to the first line of the stored payout (treasury journal)."""
    with sqlite3.connect(store[len("sqlite:///"):]) as db:
        rows = db.execute("SELECT originator_version, state FROM stored_events WHERE originator_id='journal:treasury' "
                          "ORDER BY originator_version").fetchall()
        head = genesis("treasury")
        for version, state in rows:
            segment = decode_segment(state)
            records = [msgspec.structs.replace(r, transfers=[msgspec.structs.replace(r.transfers[0], amount_minor=r.transfers[0].amount_minor + 1_000),
                                                             *r.transfers[1:]]) if isinstance(r, PaidOut) else r for r in segment.records]
            payload = encode_segment(msgspec.structs.replace(segment, records=records))
            data, head = frame(head, payload) if rechain else (state[:len(state) - len(unframe(state)[1])] + payload, head)
            db.execute("UPDATE stored_events SET state=? WHERE originator_id='journal:treasury' AND originator_version=?", (data, version))


def test_an_edited_payout_amount_is_caught_even_with_the_chain_recomputed(capsys, store, jsonl):
    cli(capsys, "--store", store, "ingest", str(jsonl))
    cli(capsys, "--store", store, "settle", "--as-of", "2026-03-01T00:00:00Z")
    assert cli(capsys, "--store", store, "payout", "--as-of", "2026-03-01T00:00:00Z")[0] == 0
    _edit_payout(store, rechain=False)
    code, out, _ = cli(capsys, "--store", store, "audit", "replay")
    assert code == 1 and "FAIL journal treasury segment 2: chain link broken" in out
    _edit_payout(store, rechain=True)  # a consistent chain again, now 2,000 more paid than was payable
    code, out, _ = cli(capsys, "--store", store, "audit", "replay")
    assert code == 1 and "chain link broken" not in out
    assert "FAIL journal treasury position 2: paid alice CNY 2750, but payable there was 750" in out


def test_a_consistently_regenerated_history_is_caught_by_re_execution_and_the_anchor(capsys, store, jsonl, tmp_path):
    cli(capsys, "--store", store, "ingest", str(jsonl))
    code, out, _ = cli(capsys, "--store", store, "audit", "replay")
    assert code == 0
    heads = tmp_path / "heads.txt"
    heads.write_text(out)
    tamper(store, "e-O1", _inflate, rechain=True)
    code, out, _ = cli(capsys, "--store", store, "audit", "replay", "--anchor", str(heads))
    assert code == 1
    assert "FAIL journal main position 10: the anchored head no longer matches" in out
    assert "FAIL journal main record 5 (Ingested) differs from what the rules produce on replay" in out
    code, out, _ = cli(capsys, "--store", store, "audit", "replay", "--fast")
    assert code == 1 and "re-execution skipped (--fast)" in out  # the state row no longer stands at the head
    assert "FAIL journal main position 10: the state tables stand at position 10 (segment 2) with another head" in out


def test_a_deleted_newest_segment_is_caught_by_the_anchor_and_the_state_row(capsys, store, jsonl, tmp_path):
    cli(capsys, "--store", store, "ingest", str(jsonl))
    cli(capsys, "--store", store, "settle", "--as-of", "2026-03-01T00:00:00Z")  # main's segment 3
    code, out, _ = cli(capsys, "--store", store, "audit", "replay")
    assert code == 0 and "head main 11 sha256:" in out
    heads = tmp_path / "heads.txt"
    heads.write_text(out)
    with sqlite3.connect(store[len("sqlite:///"):]) as db:  # the settle disappears, as a forger would have it
        deleted = db.execute("DELETE FROM stored_events WHERE originator_id='journal:main' AND originator_version=3").rowcount
    assert deleted == 1
    code, out, err = cli(capsys, "--store", store, "audit", "replay", "--anchor", str(heads))
    assert code == 1
    assert "FAIL journal main position 11: the anchored head is gone (the journal now ends at 10)" in out
    assert "FAIL journal main position 10: the state tables stand at position 11 (segment 3) with another head" in out
    assert err.startswith("commission-ledger: audit failed: journal main position") and len(err.splitlines()) == 1
    code, _, err = cli(capsys, "--store", store, "ingest", str(jsonl))
    assert code == 1 and "integrity error" in err  # no write on a journal whose state is ahead of it


def test_audit_replay_digest_is_stable_across_stores(capsys, tmp_path, jsonl):
    digests = []
    for name in ("a", "b"):
        store = f"sqlite:///{tmp_path}/{name}.db"
        cli(capsys, "--store", store, "ingest", str(jsonl))
        cli(capsys, "--store", store, "settle", "--as-of", "2026-02-01T00:00:00Z")
        code, out, _ = cli(capsys, "--store", store, "audit", "replay")
        assert code == 0 and "replay matches live" in out
        digests.append(next(l for l in out.splitlines() if l.startswith("digest sha256:")))
    assert digests[0] == digests[1] and digests[0].startswith("digest sha256:")


def test_concurrent_writer_is_caught_up_not_overwritten(store):
    first = new_ledger(store_url=store)
    second = Ledger(JournalStore(store))
    feed(first, EVENTS[:4])
    # `second` is stale: its settle must see first's events, not overwrite them.
    record = second.settle("2026-02-01T00:00:00Z")
    assert record.order_ids == ["O1"]
    fresh = Ledger(JournalStore(store))
    assert fold_records(r for _, r in fresh.records())[("bob", "CNY")] == [0, 3000, 0]


def test_console_script_reads_stdin(tmp_path):
    store = f"sqlite:///{tmp_path}/ledger.db"
    exe = os.path.join(os.path.dirname(sys.executable), "commission-ledger")
    data = "\n".join(json.dumps(e) for e in EVENTS).encode()
    done = subprocess.run([exe, "--store", store, "ingest", "-"], input=data, capture_output=True, check=True)
    assert done.stdout.decode().splitlines()[0] == "accepted=7 duplicates=0 parked=0 dead_letters=0"
    help_text = subprocess.run([exe, "payout", "--help"], capture_output=True, check=True).stdout.decode()
    assert "--as-of" in help_text


def test_concurrent_payout_commands_pay_once_on_sqlite(tmp_path):
    import threading

    from ledger.books import Books
    from ledger.store import Store

    url = f"sqlite:///{tmp_path}/ledger.db"
    ledger = new_ledger(store_url=url)
    feed(ledger, [share(f"S{i}", f"p{i}", "2026-01-01T00:00:00Z") for i in range(10)]
         + [click(f"b{i}", f"S{i}", "2026-01-02T00:00:00Z") for i in range(10)]
         + [order(f"O{i}", f"b{i}", "2026-01-02T01:00:00Z", amount=10_000) for i in range(10)])
    ledger.settle("2026-02-01T00:00:00Z")
    results = []
    threads = [threading.Thread(target=lambda: results.append(Books(Store(url)).payout("2026-02-01T00:00:00Z")))
               for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = [t for r in results for t in r.transfers]
    assert len(results) == 6 and len(lines) == 10 and sum(t.amount_minor for t in lines) == 15_000


def test_payout_batch_reconciles_carry_over_and_clawbacks(capsys, store):
    ledger = new_ledger(store_url=store)
    feed(ledger, [share("A", "alice", "2026-01-01T00:00:00Z"), click("u1", "A", "2026-01-02T00:00:00Z"),
                  order("O1", "u1", "2026-01-02T01:00:00Z", amount=10_000),
                  click("u2", "A", "2026-01-02T00:00:00Z"), order("O2", "u2", "2026-01-02T02:00:00Z", amount=4_000)])
    ledger.settle("2026-02-01T00:00:00Z")
    payout(ledger, "2026-02-01T00:00:00Z")  # pays 1500 + 600
    feed(ledger, [refund("R1", "O1", "u1", 10_000)])  # clawback −1500 after payout
    adjust(ledger, "alice", "CNY", 1_700, "campaign bonus", "fin")
    code, out, _ = cli(capsys, "--store", store, "payout", "--as-of", "2026-02-02T00:00:00Z", "--format", "json")
    [line] = json.loads(out)
    assert (line["amount"], line["carried_over"]) == (200, 0)
    assert [(e["kind"], e["amount_minor"]) for e in line["entries"]] == [("clawback", -1500), ("adjustment", 1700)]
    code, out, _ = cli(capsys, "--store", store, "payouts", "--format", "json")
    assert json.loads(out) == [{"promoter_id": "alice", "currency": "CNY", "pending": 0, "payable": 0, "paid": 2300}]


def test_time_travel_equals_ingesting_only_the_prefix(capsys, tmp_path, store):
    ledger = new_ledger(store_url=store)
    feed(ledger, EVENTS[:4])
    ledger.settle("2026-01-17T01:00:00Z")
    code, out, _ = cli(capsys, "--store", store, "audit", "replay")
    position = int(next(l for l in out.splitlines() if l.startswith("store position:")).split(":")[1])
    midway = cli(capsys, "--store", store, "payouts", "--format", "json")[1]
    feed(ledger, EVENTS[4:])
    payout(ledger, "2026-01-20T00:00:00Z")
    code, then, _ = cli(capsys, "--store", store, "payouts", "--format", "json", "--at-position", str(position))
    assert then == midway
    code, now, _ = cli(capsys, "--store", store, "payouts", "--format", "json")
    assert now != midway
    # Same prefix ingested alone into a fresh store gives the same balances.
    other = f"sqlite:///{tmp_path}/prefix.db"
    feed(new_ledger(store_url=other), EVENTS[:4])
    Ledger(JournalStore(other)).settle("2026-01-17T01:00:00Z")
    assert cli(capsys, "--store", other, "payouts", "--format", "json")[1] == midway
    code, recorded, _ = cli(capsys, "--store", store, "payouts", "--format", "json", "--as-of", "2000-01-01T00:00:00Z")
    assert json.loads(recorded) == []
    code, statement_then, _ = cli(capsys, "--store", store, "statement", "bob", "--format", "json", "--at-position", str(position))
    assert [e["kind"] for e in json.loads(statement_then)] == ["accrual", "settlement"]


def test_projection_process_stops_restarts_and_catches_up(capsys, store):
    """``project`` folds what was committed since its tracked position, and
    nothing twice: after each run the tables equal a fold of the whole log."""
    from ledger.books import Books
    from ledger.store import Store
    from projections.projector import tracked_position
    from projections.readmodels import balance_map
    from projections.tables import database

    ledger = new_ledger(store_url=store)
    feed(ledger, EVENTS[:4])
    done = subprocess.run([EXE, "--store", store, "project"], capture_output=True, text=True, check=True)
    first = tracked_position(database(Store(store)))
    assert first > 0 and f"store position {first}" in done.stdout and "folded 2 segments, 5 records" in done.stdout
    feed(ledger, EVENTS[4:])  # committed after that run
    assert tracked_position(database(Store(store))) == first
    again = subprocess.run([EXE, "--store", store, "project"], capture_output=True, text=True, check=True)
    assert "folded 1 segments, 3 records" in again.stdout
    idle = subprocess.run([EXE, "--store", store, "project"], capture_output=True, text=True, check=True)
    assert "folded 0 segments, 0 records" in idle.stdout  # nothing new: nothing folded
    fresh = Store(store)
    assert tracked_position(database(fresh)) > first and balance_map(fresh) == Books(fresh).balances()
    code, out, _ = cli(capsys, "--store", store, "payouts", "--format", "json")
    assert {(r["promoter_id"], r["currency"]): r["pending"] for r in json.loads(out)} == {
        ("alice", "CNY"): 750, ("alice", "HKD"): 150, ("bob", "CNY"): 2250}


EXE = os.path.join(os.path.dirname(sys.executable), "commission-ledger")


def test_cache_bound_from_the_environment(capsys, monkeypatch, jsonl, tmp_path):
    from ledger.limits import MIB, parse_limits

    monkeypatch.setenv("LEDGER_CACHE_MB", "lots")
    code, _, err = cli(capsys, "--store", f"sqlite:///{tmp_path}/a.db", "payouts")
    assert code == 2 and err.strip() == "commission-ledger: LEDGER_CACHE_MB='lots' must be a whole number of MiB ≥ 0"
    outputs = []
    for limit in ("0", "512"):
        monkeypatch.setenv("LEDGER_CACHE_MB", limit)
        store = f"sqlite:///{tmp_path}/{limit}.db"
        assert cli(capsys, "--store", store, "ingest", str(jsonl))[0] == 0
        assert parse_limits({"LEDGER_CACHE_MB": limit}).cache_bytes == int(limit) * MIB
        outputs.append(cli(capsys, "--store", store, "payouts", "--format", "json")[1])
    assert outputs[0] == outputs[1] and json.loads(outputs[0])


def test_many_processes_opening_a_new_sqlite_database_at_once(tmp_path):
    """The switch to WAL mode of a new SQLite file answers "database is locked"
    to the losers of the race (the busy timeout does not cover it): they retry."""
    go = tmp_path / "go"
    opener = ("import os, sys, time\n"
              "from ledger.store import Store\n"
              "while not os.path.exists(sys.argv[1]): time.sleep(0.001)\n"
              "Store(sys.argv[2]).journals()\n")
    for round_ in range(4):
        store = f"sqlite:///{tmp_path}/fresh{round_}.db"
        procs = [subprocess.Popen([sys.executable, "-c", opener, str(go), store], cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(8)]
        time.sleep(1.0)  # all started and waiting
        go.touch()
        results = [p.communicate(timeout=120) for p in procs]
        go.unlink()
        assert [p.returncode for p in procs] == [0] * 8, [err.decode()[-300:] for _, err in results]


def _on_a_terminal(argv: list[str]) -> tuple[subprocess.CompletedProcess, str]:
    """Run the console script with stderr on a pseudo-terminal: (run, what the terminal showed)."""
    import pty
    import threading

    master, slave = pty.openpty()
    shown = bytearray()

    def drain() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the last writer closed the terminal
                return
            if not chunk:
                return
            shown.extend(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "120"}
    try:
        done = subprocess.run([EXE, *argv], stdout=subprocess.PIPE, stderr=slave, env=env, timeout=120)
    finally:
        os.close(slave)
        reader.join(timeout=10)
        os.close(master)
    return done, shown.decode(errors="replace")


def _no_heads(output: bytes) -> bytes:
    return b"".join(line for line in output.splitlines(keepends=True) if not line.startswith(b"head "))


def test_progress_bars_on_a_terminal_only(tmp_path):
    """Progress goes to stderr when it is a terminal, and nowhere else; the output is the same."""
    from devkit.synthetic import generate

    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(line + b"\n" for line in generate(3_000, seed=5)))
    commands = (["ingest", str(events)], ["settle", "--as-of", "2026-03-01T00:00:00Z"], ["audit", "replay"])
    for argv in commands:
        plain = subprocess.run([EXE, "--store", f"sqlite:///{tmp_path}/plain.db", *argv], capture_output=True, timeout=120)
        assert plain.returncode == 0 and plain.stderr == b""
        done, shown = _on_a_terminal(["--store", f"sqlite:///{tmp_path}/tty.db", *argv])
        # Chain heads differ between two stores: segments record when they were written.
        assert done.returncode == 0 and _no_heads(done.stdout) == _no_heads(plain.stdout)
        bar = {"ingest": "ingesting", "settle": "", "audit": "reading the store"}[argv[0]]  # settle reads no journal now
        assert bar in shown, shown[-500:]
    assert "100%" in shown and "positions" in shown  # audit: a share of the notification log


def test_a_cursor_past_a_bigint_is_one_line_and_exit_2(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/l.db"
    code, _, err = cli(capsys, "--store", url, "statement", "p1", "--after", str(2**63))
    assert code == 2 and err.strip() == "commission-ledger: after 9223372036854775808: must be 0 to 2^63 − 1"
    code, _, err = cli(capsys, "--store", url, "payouts", "--at-position", str(2**64))
    assert code == 2 and err.strip() == "commission-ledger: position 18446744073709551616: must be 0 to 2^63 − 1"
