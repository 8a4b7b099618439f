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
from tests.helpers import adjust, feed, new_ledger, payout
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
