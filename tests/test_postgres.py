"""PostgreSQL store: same behaviour as SQLite, against a real server."""

from __future__ import annotations

import re
import subprocess
import threading

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumers.kafka import ensure_topics, publish
from devkit.synthetic import generate
from ledger.books import Books
from ledger.records import PaidOut
from ledger.store import Store
from projections.audit import audit_replay
from tests.helpers import adjust, feed, kill_by_progress, new_ledger, payout
from tests.test_kafka import EXE, _nonzero, reference_balances
from tests.test_properties import deliveries, rules_strategy, streams

_counter = [0]


def _run_scenario(url: str, rules, deliveries_: list[str]) -> str:
    ledger = new_ledger(rules, url)
    half = len(deliveries_) // 2
    feed(ledger, deliveries_[:half])
    ledger.settle("2026-01-16T02:00:00Z")
    payout(ledger, "2026-01-16T02:00:00Z")
    feed(ledger, deliveries_[half:])
    ledger.settle("2026-02-01T00:00:00Z")
    adjust(ledger, "p2", "CNY", 250, "bonus", "tester")
    payout(ledger, "2026-02-01T00:00:00Z")
    result = audit_replay(Store(url))
    assert result.differences == [] and result.unbalanced == {}
    return result.digest


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data(), events=streams(), rules=rules_strategy)
def test_replay_equals_live_and_digest_is_identical_on_sqlite_and_postgres(postgres_server, tmp_path_factory, data, events, rules):
    order = data.draw(deliveries(events))
    _counter[0] += 1
    digests = {
        "sqlite": _run_scenario(f"sqlite:///{tmp_path_factory.mktemp('pg')}/ledger.db", rules, order),
        "postgres": _run_scenario(postgres_server.create_database(f"prop_{_counter[0]}"), rules, order),
        "postgres again": _run_scenario(postgres_server.create_database(f"prop_{_counter[0]}_b"), rules, order),
    }
    assert len(set(digests.values())) == 1, digests


def test_concurrent_payouts_pay_each_balance_once(postgres_url):
    ledger = new_ledger(store_url=postgres_url)
    from tests.helpers import click, order, share

    feed(ledger, [share(f"S{i}", f"p{i}", "2026-01-01T00:00:00Z") for i in range(20)]
         + [click(f"b{i}", f"S{i}", "2026-01-02T00:00:00Z") for i in range(20)]
         + [order(f"O{i}", f"b{i}", "2026-01-02T01:00:00Z", amount=10_000) for i in range(20)])
    ledger.settle("2026-02-01T00:00:00Z")
    results: list[PaidOut] = []
    errors: list[BaseException] = []

    def pay() -> None:
        try:
            results.append(Books(Store(postgres_url)).payout("2026-02-01T00:00:00Z"))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=pay) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    lines = [t for r in results for t in r.transfers]
    assert len(lines) == 20 and sum(t.amount_minor for t in lines) == 20 * 1500
    balances = Books(Store(postgres_url)).balances()
    assert all(row == [0, 0, 1500] for row in balances.values())


def test_two_consumer_processes_share_one_postgres_database(postgres_url, kafka_bootstrap, topics):
    lines = list(generate(10_000, seed=13))
    ensure_topics(kafka_bootstrap, {topics[0]: 4, topics[1]: 2})
    publish(lines, kafka_bootstrap, topic=topics[0], shares_topic=topics[1])
    group = f"pg-{topics[0]}"
    cmd = [EXE, "--store", postgres_url, "consume", "--bootstrap-servers", kafka_bootstrap,
           "--topic", topics[0], "--shares-topic", topics[1], "--group", group, "--until-idle", "8",
           "--session-timeout-ms", "6000", "--max-poll-interval-ms", "10000"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [p.communicate(timeout=240) for p in procs]
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err.decode()[-2000:]
    assigned = [set(int(x) for x in re.findall(r"assigned partitions \[([\d, ]+)\]", err.decode())[-1].split(", "))
                for _, err in outputs if "assigned partitions" in err.decode()]
    assert len(assigned) == 2, "both members got partitions"
    journals = Books(Store(postgres_url)).journals()
    assert sorted(journals) == [f"kafka:{topics[0]}:{p}" for p in range(4)]
    assert _nonzero(Books(Store(postgres_url)).balances()) == reference_balances(lines)
    audit = subprocess.run([EXE, "--store", postgres_url, "audit", "replay"], capture_output=True)
    assert audit.returncode == 0 and b"replay matches live" in audit.stdout


def test_connection_error_is_one_clear_line():
    done = subprocess.run([EXE, "--store", "postgresql://postgres:secret@127.0.0.1:1/nowhere", "payouts"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1
    assert "cannot open store postgresql://postgres:***@127.0.0.1:1/nowhere" in done.stderr


def test_many_processes_opening_a_new_database_at_once(postgres_url):
    """Schema creation races (CREATE TABLE, eventsourcing's tracking migration)
    are serialised: every opener succeeds."""
    procs = [subprocess.Popen([EXE, "--store", postgres_url, "payouts", "--format", "json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(6)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [err.decode() for _, err in results]
    assert all(out.strip() == b"[]" for out, _ in results)


def test_ingest_killed_with_sigkill_then_resumed_gives_a_clean_ingests_balances(postgres_server, tmp_path):
    """SIGKILL an ingest into PostgreSQL inside its batches (each one
    transaction: segment and state), then ingest again to the end: the
    balances are a clean ingest's and the audit re-execution passes."""
    import os
    import random
    import signal
    import time

    lines = list(generate(6_000, seed=23))
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    clean = postgres_server.create_database("sigkill_clean")
    subprocess.run([EXE, "--store", clean, "ingest", str(path)], check=True, capture_output=True)
    url = postgres_server.create_database("sigkill_killed")
    cmd = [EXE, "--store", url, "ingest", "--batch-events", "50", str(path)]
    import psycopg

    def segments() -> int:
        """Segments stored so far, read as another client would (0 before the tables exist)."""
        with psycopg.connect(url, autocommit=True) as db:
            try:
                return db.execute("SELECT count(*) FROM stored_events").fetchone()[0]
            except psycopg.errors.UndefinedTable:
                return 0

    rng = random.Random(6)
    kills = kill_by_progress(cmd, segments, rng)
    assert kills >= 2  # 120 segments of 50 events: each round stops a dozen segments in at most
    done = subprocess.run(cmd, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert _nonzero(Books(Store(url)).balances()) == _nonzero(Books(Store(clean)).balances())
    result = audit_replay(Store(url))
    assert result.ok and result.reexecuted, result.failures


def test_a_journal_in_an_earlier_state_format_is_refused_then_migrated(postgres_url):
    """A journal whose meta row carries another state format (as written by
    the version before ``state_format``) is refused with one line naming
    ``migrate``; ``migrate`` rebuilds its state tables on PostgreSQL and the
    audit passes with the same digest."""
    import msgspec

    from ledger.engine.state import JournalMeta
    from ledger.errors import MigrationNeeded
    from ledger.migrate import migrate
    from ledger.store import JournalStore
    from ledger.statestore import postgres_write

    ledger = new_ledger(None, postgres_url)
    feed(ledger, generate(1_500, seed=8))
    ledger.settle("2026-01-20T00:00:00Z")
    before = audit_replay(Store(postgres_url))
    assert before.ok and before.reexecuted, before.failures
    store = Store(postgres_url)
    journal = JournalStore(store, "main")
    meta_key = b"\x00"
    (raw,) = journal.state.get_many(journal.number, [meta_key]).values()
    old = msgspec.structs.replace(msgspec.msgpack.decode(raw, type=JournalMeta), state_format=0)
    with store.recorder.datastore.transaction(commit=True) as c:  # type: ignore[attr-defined]
        postgres_write(c, journal.number, [(meta_key, msgspec.msgpack.encode(old))])
    refused = subprocess.run([EXE, "--store", postgres_url, "settle", "--as-of", "2026-01-22T00:00:00Z"],
                             capture_output=True, text=True)
    assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1
    assert "`commission-ledger migrate`" in refused.stderr
    try:
        new_ledger(None, postgres_url)
        raise AssertionError("opened a journal in an earlier state format")
    except MigrationNeeded:
        pass
    assert migrate(Store(postgres_url)) == {"main": ledger.version}
    after = audit_replay(Store(postgres_url))
    assert after.ok and after.digest == before.digest, after.failures
    assert migrate(Store(postgres_url)) == {}
