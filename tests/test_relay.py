"""The relay (SPEC §13): ledger events out to Kafka, at least once, never skipping.

Against a real broker (the ``kafka_bootstrap`` fixture); nothing is mocked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from consumers.jsonl import read_files
from consumers.relay import Relay, RelayMetrics, ledger_events, store_events, tracking_name
from devkit.synthetic import generate
from ledger.books import Books
from ledger.config import Rules
from ledger.log import segments
from ledger.records import Source, decode_segment_money
from ledger.store import Store
from schemas import outbound

EXE = os.path.join(os.path.dirname(sys.executable), "commission-ledger")
INTEROP = Path(__file__).parent / "interop"
BUCKET_INDEX = {"pending": 0, "payable": 1, "paid": 2}

SAMPLE = [
    b'{"type":"share","event_id":"e-1","occurred_at":"2026-01-01T00:00:00Z","share_id":"sh-A","promoter_id":"alice"}',
    b'{"type":"share","event_id":"e-2","occurred_at":"2026-01-01T09:00:00+08:00","share_id":"sh-B","promoter_id":"bob","parent_share_id":"sh-A"}',
    b'{"type":"click","event_id":"e-3","occurred_at":"2026-01-02T00:00:00Z","buyer_id":"u-1","share_id":"sh-B"}',
    b'{"type":"order","event_id":"e-4","occurred_at":"2026-01-02T01:00:00Z","order_id":"O-1","buyer_id":"u-1","merchant_id":"m-1",'
    b'"currency":"CNY","shipping":800,"lines":[{"sku":"tea","quantity":2,"unit_price":10000,"discount":500,"level1_rate_bp":1800}]}',
    b'{"type":"refund","event_id":"e-5","occurred_at":"2026-01-05T00:00:00+08:00","refund_id":"R-1","order_id":"O-1","buyer_id":"u-1","amount":4875}',
]
LATE_REFUND = (b'{"type":"refund","event_id":"e-6","occurred_at":"2026-02-03T00:00:00Z","refund_id":"R-2",'
               b'"order_id":"O-1","buyer_id":"u-1","amount":1000}')


def _ingest(books: Books, lines: list[bytes], name: str = "test") -> None:
    books.ledger("main").ingest((raw, Source(file=name, line=i)) for i, raw in enumerate(lines, 1))


def _split_holding_refunds(lines: list[bytes], k: int) -> tuple[list[bytes], list[bytes]]:
    """The first ``k`` lines without their refunds, then those refunds and the
    rest: ingest the first part, settle, ingest the rest, and refunds of settled
    orders claw commission back."""
    refunds = [raw for raw in lines[:k] if b'"type":"refund"' in raw]
    return [raw for raw in lines[:k] if b'"type":"refund"' not in raw], refunds + lines[k:]


def ledger_with_every_movement(url: str, events: int, seed: int) -> Books:
    """A synthetic ledger with every kind of movement: 70% of the events (their
    refunds held back), a settlement and a payout, the rest (refunds of settled
    orders claw back), and two adjustments (a bonus and a correction)."""
    books = Books(Store(url), Rules())
    first, rest = _split_holding_refunds(list(generate(events, seed=seed)), events * 7 // 10)
    _ingest(books, first)
    books.settle("2026-02-01T00:00:00Z")
    books.payout("2026-02-01T00:00:00Z")
    _ingest(books, rest, "more")
    books.adjust("p1", "CNY", 500, "bonus", "test")
    books.adjust("p2", "CNY", -300, "correction", "test")
    return books


def read_topic(bootstrap: str, topic: str, at_least: int, *, idle_s: float = 2.0, timeout_s: float = 180.0) -> list:
    """Every message of ``topic`` (all partitions, from the start): waits for
    ``at_least``, then until nothing new came for ``idle_s``."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, max_poll_records=5000)
    try:
        deadline = time.monotonic() + 30
        while not consumer.partitions_for_topic(topic):
            assert time.monotonic() < deadline, f"topic {topic} never appeared"
            time.sleep(0.2)
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        messages: list = []
        deadline = time.monotonic() + timeout_s
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=500, max_records=5000)
            for records in batch.values():
                messages.extend(records)
            if batch:
                last_new = time.monotonic()
            elif len(messages) >= at_least and time.monotonic() - last_new >= idle_s:
                break
        assert len(messages) >= at_least, f"{len(messages)} of at least {at_least} messages on {topic}"
        return messages
    finally:
        consumer.close()


def _fold(values) -> dict[tuple[str, str], list[int]]:
    """(promoter, currency) → [pending, payable, paid] from messages' from/to."""
    balances: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for v in values:
        row = balances[(v["promoter_id"], v["currency"])]
        if v["from"] in BUCKET_INDEX:
            row[BUCKET_INDEX[v["from"]]] -= v["amount_minor"]
        if v["to"] in BUCKET_INDEX:
            row[BUCKET_INDEX[v["to"]]] += v["amount_minor"]
    return dict(balances)


def _order_key(event_id: str) -> tuple[str, int, int]:
    journal, position, n = event_id.rsplit(":", 2)
    return journal, int(position), int(n)


def _assert_record_order_per_partition(messages) -> None:
    """In each partition, the first delivery of each message comes in record
    order within its journal (re-sends after a crash may repeat earlier ones)."""
    seen: set[str] = set()
    newest: dict[tuple[int, str], tuple[int, int]] = {}
    for m in sorted(messages, key=lambda m: (m.partition, m.offset)):
        event_id = json.loads(m.value)["event_id"]
        if event_id in seen:
            continue
        seen.add(event_id)
        journal, position, n = _order_key(event_id)
        key = (m.partition, journal)
        assert (position, n) > newest.get(key, (0, -1)), f"{event_id} after {newest[key]} in partition {m.partition}"
        newest[key] = (position, n)


# --------------------------------------------------------------------- schema
def test_shipped_json_schema_is_generated_from_the_struct():
    """schemas/ledger-events.schema.json is msgspec.json.schema(LedgerEvent): it cannot drift."""
    import msgspec

    generated = outbound.json_schema()
    assert {k: v for k, v in generated.items() if not k.startswith("$schema") and k not in ("$id", "title")} \
        == msgspec.json.schema(outbound.LedgerEvent)
    assert outbound.shipped_schema() == outbound.schema_text(), (
        "regenerate with: python -m schemas.outbound > schemas/ledger-events.schema.json")
    fields = generated["$defs"]["LedgerEvent"]
    assert set(fields["required"]) == {"type", "event_id", "promoter_id", "currency", "amount_minor", "from", "to"}
    assert set(fields["properties"]) == set(fields["required"]) | {
        "order_id", "merchant_id", "level", "rules_version", "cause_event_id", "event_time", "recorded_at"}
    for text in re.findall(r'"pattern": "([^"]*)"', outbound.shipped_schema()):  # ECMAScript regexes too (ajv)
        assert "\\\\A" not in text and "\\\\Z" not in text


def test_schema_ships_with_the_package():
    import importlib.resources

    text = importlib.resources.files("schemas").joinpath("ledger-events.schema.json").read_text(encoding="utf-8")
    assert json.loads(text)["$ref"] == "#/$defs/LedgerEvent"


# ------------------------------------------------------------ pure messages
def test_money_movements_sum_to_the_balances_of_payouts():
    """Σ into a bucket − Σ out of it = that balance, for every promoter and currency."""
    books = ledger_with_every_movement("memory://", 6_000, seed=5)
    events = list(store_events(books.store))
    values = [json.loads(outbound.encode(e)) for e in events]
    assert {v["type"] for v in values} == set(outbound.TYPES.values())
    assert len({v["event_id"] for v in values}) == len(values)
    assert all(v["amount_minor"] > 0 for v in values)
    assert all(outbound.decode(outbound.encode(e)) == e for e in events)
    expected = {k: v for k, v in books.balances().items() if any(v)}
    assert {k: v for k, v in _fold(values).items() if any(v)} == expected


# ---------------------------------------------------------------- the relay
def test_relay_publishes_exactly_the_expected_messages(tmp_path, kafka_bootstrap, topics):
    url = f"sqlite:///{tmp_path}/ledger.db"
    books = Books(Store(url), Rules())
    _ingest(books, SAMPLE)
    books.settle("2026-02-01T00:00:00Z")
    _ingest(books, [LATE_REFUND], "late")  # after settlement: clawbacks
    books.payout("2026-02-05T00:00:00+08:00")
    books.adjust("alice", "CNY", -50, "duplicate bonus", "fin-ops")
    books.adjust("bob", "CNY", 20, "goodwill", "fin-ops")

    topic = f"out-{topics[0]}"
    stats = Relay(books.store, kafka_bootstrap, topic=topic, partitions=3).run(until_idle_s=0.5)
    messages = read_topic(kafka_bootstrap, topic, stats.messages)

    common = {"currency": "CNY", "order_id": "O-1", "merchant_id": "m-1", "rules_version": 1}
    expected = [
        {"type": "commission.accrued", "event_id": "main:5:0", "promoter_id": "bob", "amount_minor": 3510, "from": "merchant",
         "to": "pending", "level": 1, "cause_event_id": "e-4", "event_time": "2026-01-02T01:00:00.000000Z", **common},
        {"type": "commission.accrued", "event_id": "main:5:1", "promoter_id": "alice", "amount_minor": 975, "from": "merchant",
         "to": "pending", "level": 2, "cause_event_id": "e-4", "event_time": "2026-01-02T01:00:00.000000Z", **common},
        {"type": "commission.reversed", "event_id": "main:6:0", "promoter_id": "bob", "amount_minor": 878, "from": "pending",
         "to": "merchant", "level": 1, "cause_event_id": "e-5", "event_time": "2026-01-04T16:00:00.000000Z", **common},
        {"type": "commission.reversed", "event_id": "main:6:1", "promoter_id": "alice", "amount_minor": 244, "from": "pending",
         "to": "merchant", "level": 2, "cause_event_id": "e-5", "event_time": "2026-01-04T16:00:00.000000Z", **common},
        {"type": "commission.settled", "event_id": "main:7:0", "promoter_id": "bob", "amount_minor": 2632, "from": "pending",
         "to": "payable", "level": 1, "event_time": "2026-02-01T00:00:00.000000Z", **common},
        {"type": "commission.settled", "event_id": "main:7:1", "promoter_id": "alice", "amount_minor": 731, "from": "pending",
         "to": "payable", "level": 2, "event_time": "2026-02-01T00:00:00.000000Z", **common},
        {"type": "commission.clawed_back", "event_id": "main:8:0", "promoter_id": "bob", "amount_minor": 180, "from": "payable",
         "to": "merchant", "level": 1, "cause_event_id": "e-6", "event_time": "2026-02-03T00:00:00.000000Z", **common},
        {"type": "commission.clawed_back", "event_id": "main:8:1", "promoter_id": "alice", "amount_minor": 50, "from": "payable",
         "to": "merchant", "level": 2, "cause_event_id": "e-6", "event_time": "2026-02-03T00:00:00.000000Z", **common},
        {"type": "payout.paid", "event_id": "treasury:2:0", "promoter_id": "alice", "currency": "CNY", "amount_minor": 681,
         "from": "payable", "to": "paid", "rules_version": 1, "event_time": "2026-02-04T16:00:00.000000Z"},
        {"type": "payout.paid", "event_id": "treasury:2:1", "promoter_id": "bob", "currency": "CNY", "amount_minor": 2452,
         "from": "payable", "to": "paid", "rules_version": 1, "event_time": "2026-02-04T16:00:00.000000Z"},
        {"type": "adjustment.posted", "event_id": "treasury:3:0", "promoter_id": "alice", "currency": "CNY", "amount_minor": 50,
         "from": "payable", "to": "platform", "rules_version": 1},
        {"type": "adjustment.posted", "event_id": "treasury:4:0", "promoter_id": "bob", "currency": "CNY", "amount_minor": 20,
         "from": "platform", "to": "payable", "rules_version": 1},
    ]
    values = [json.loads(m.value) for m in messages]
    recorded = {v["event_id"]: v.pop("recorded_at") for v in values}
    assert sorted(values, key=lambda v: _order_key(v["event_id"])) == expected
    assert stats.messages == len(expected) and len(messages) == len(expected)  # no duplicates without a crash
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", t) for t in recorded.values())
    assert all(m.key.decode() == json.loads(m.value)["promoter_id"] for m in messages)
    by_promoter = {json.loads(m.value)["promoter_id"]: m.partition for m in messages}
    assert all(by_promoter[json.loads(m.value)["promoter_id"]] == m.partition for m in messages)  # one partition each
    _assert_record_order_per_partition(messages)
    assert _fold(values) == {k: v for k, v in books.balances().items()}
    last = max(nid for nid, _, _ in segments(books.store))
    assert books.store.position(tracking_name(topic)) == last == stats.position

    # Resumed: nothing new, nothing sent again. New records: only they are sent.
    assert Relay(books.store, kafka_bootstrap, topic=topic).run(until_idle_s=0.2).messages == 0
    books.adjust("alice", "CNY", 7, "more", "fin-ops")
    again = Relay(books.store, kafka_bootstrap, topic=topic).run(until_idle_s=0.2)
    assert again.messages == 1
    newest = Counter(json.loads(m.value)["event_id"] for m in read_topic(kafka_bootstrap, topic, len(expected) + 1))
    assert newest["treasury:5:0"] == 1 and sum(newest.values()) == len(expected) + 1


def _relay_proc(url: str, bootstrap: str, topic: str, *extra: str, log=None) -> subprocess.Popen:
    return subprocess.Popen([EXE, "--store", url, "relay", "--bootstrap-servers", bootstrap, "--topic", topic, *extra],
                            stdout=subprocess.PIPE, stderr=log if log is not None else subprocess.DEVNULL, text=True)


def test_relay_killed_with_sigkill_resumes_and_skips_nothing(tmp_path, kafka_bootstrap, topics):
    """SPEC §13 at scale: a 100k-event ingest (with settlement, payouts, clawbacks
    and adjustments), the relay SIGKILLed at several points and restarted: every
    money movement is on the topic at least once, none is missing, duplicates
    are only re-sends of what was not yet acknowledged, and the deduplicated sums
    equal the ledger's balances."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    books = ledger_with_every_movement(url, 100_000, seed=11)
    store = books.store
    expected = {e.event_id: json.loads(outbound.encode(e)) for e in store_events(store)}
    per_segment = [sum(1 for _ in ledger_events(j, s)) for _, j, s in segments(store, decode=decode_segment_money)]
    last = max(nid for nid, _, _ in segments(store))
    assert len(expected) > 70_000 and {v["type"] for v in expected.values()} == set(outbound.TYPES.values())

    topic = f"out-{topics[0]}"
    name = tracking_name(topic)
    chunk = 2_000  # a chunk is then one segment: a stored position per segment
    kills = []  # (signal, stored position when it was sent)
    log = open(tmp_path / "relay.log", "w")
    for fraction, sig in ((0.2, signal.SIGKILL), (0.45, signal.SIGKILL), (0.7, signal.SIGKILL), (0.85, signal.SIGTERM)):
        proc = _relay_proc(url, kafka_bootstrap, topic, "--chunk-messages", str(chunk), log=log)
        try:
            deadline = time.monotonic() + 120
            while (Store(url).position(name) or 0) < fraction * last:
                assert proc.poll() is None, "relay exited before its kill point"
                assert time.monotonic() < deadline, "relay made no progress"
                time.sleep(0.01)
            time.sleep(0.05)  # land mid-chunk: messages sent, not yet acknowledged or tracked
            position = Store(url).position(name) or 0
            proc.send_signal(sig)
            out, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        kills.append((sig, position, Store(url).position(name) or 0))
        if sig == signal.SIGKILL:
            assert proc.returncode == -signal.SIGKILL
        else:  # SIGTERM: the chunk in hand is finished, acknowledged and tracked
            assert proc.returncode == 0, out
            assert "relayed" in out
    proc = _relay_proc(url, kafka_bootstrap, topic, "--chunk-messages", str(chunk), "--until-idle", "1", log=log)
    out, _ = proc.communicate(timeout=300)
    log.close()
    assert proc.returncode == 0, (tmp_path / "relay.log").read_text()[-3000:]
    assert Store(url).position(name) == last
    for _, at_kill, after in kills:
        assert after >= at_kill  # a crash never moves the position back

    messages = read_topic(kafka_bootstrap, topic, len(expected))
    delivered = Counter(json.loads(m.value)["event_id"] for m in messages)
    missing = set(expected) - set(delivered)
    unknown = set(delivered) - set(expected)
    duplicates = len(messages) - len(delivered)
    print(f"\nrelay SIGKILL test: kills (signal, stored position at kill, after) {kills}, last position {last}; "
          f"{len(expected)} movements, {len(messages)} messages, {duplicates} duplicates, {len(missing)} missing")
    assert not missing and not unknown
    for m in messages:  # every delivery of a movement is the same message
        value = json.loads(m.value)
        assert value == expected[value["event_id"]] and m.key.decode() == value["promoter_id"]
    # Re-sends are bounded by what was in flight at each SIGKILL: ≤ (chunks in flight + 1) segments.
    assert duplicates <= 3 * 3 * max(per_segment)
    _assert_record_order_per_partition(messages)
    deduplicated = {json.loads(m.value)["event_id"]: json.loads(m.value) for m in messages}
    assert _fold(deduplicated.values()) == books.balances()


def _metrics(port: int) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples}


def test_broker_down_then_up_metrics_show_lag_and_failures(tmp_path, topics):
    """The broker is not there when the relay starts: it retries with backoff,
    advances nothing and shows the lag and the failures; once the broker is up
    it relays everything and the lag drops to zero."""
    from devkit.broker import EmbeddedBroker, free_port

    url = f"sqlite:///{tmp_path}/ledger.db"
    books = Books(Store(url), Rules())
    lines = list(generate(3_000, seed=4))
    _ingest(books, lines)
    books.settle("2026-02-01T00:00:00Z")
    records = sum(len(s.records) for _, _, s in segments(books.store, decode=decode_segment_money))
    movements = sum(1 for _ in store_events(books.store))
    broker_port, metrics_port = free_port(), free_port()
    topic = f"out-{topics[0]}"
    log_path = tmp_path / "relay.log"
    with open(log_path, "w") as log:
        proc = _relay_proc(url, f"127.0.0.1:{broker_port}", topic, "--until-idle", "8",
                           "--metrics-port", str(metrics_port), log=log)
        try:
            deadline = time.monotonic() + 60
            while True:
                assert time.monotonic() < deadline and proc.poll() is None
                try:
                    m = _metrics(metrics_port)
                except OSError:
                    time.sleep(0.2)
                    continue
                if m.get("ledger_relay_send_failures_total", 0) >= 2:
                    break
                time.sleep(0.2)
            assert m["ledger_relay_lag_records"] == records
            assert m["ledger_relay_lag_seconds"] > 0
            assert m["ledger_relay_position"] == 0 and m["ledger_relay_messages_total"] == 0
            assert (Store(url).position(tracking_name(topic)) or 0) == 0
            with EmbeddedBroker(port=broker_port) as broker:
                deadline = time.monotonic() + 90
                while True:
                    assert time.monotonic() < deadline, m
                    m = _metrics(metrics_port)
                    if m["ledger_relay_messages_total"] >= movements and m["ledger_relay_lag_records"] == 0:
                        break
                    time.sleep(0.2)
                assert m["ledger_relay_lag_seconds"] == 0
                out, _ = proc.communicate(timeout=60)
                assert proc.returncode == 0
                messages = read_topic(broker.bootstrap, topic, movements)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log_path.read_text()
    assert "unreachable" in text and "retrying in" in text and "reachable again" in text, text[-2000:]
    assert f"relayed {movements} messages" in out
    assert len({json.loads(m.value)["event_id"] for m in messages}) == movements


def test_relay_usage_errors_exit_2(tmp_path):
    for extra in (["--partitions", "0"], ["--chunk-messages", "0"], ["--until-idle", "-1"]):
        done = subprocess.run([EXE, "--store", f"sqlite:///{tmp_path}/l.db", "relay", "--bootstrap-servers", "127.0.0.1:1",
                               *extra], capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr


def test_relay_metrics_registry_is_its_own():
    first, second = RelayMetrics(), RelayMetrics()  # two in one process: no duplicate-registration error
    first.messages.inc(3)
    assert second.registry.get_sample_value("ledger_relay_messages_total") == 0


# -------------------------------------------------------------------- interop
def test_kafkajs_consumer_validates_every_message_against_the_shipped_schema(tmp_path, kafka_bootstrap, topics):
    """A consumer nobody here wrote (KafkaJS, Node) reads the relay's topic and
    validates every message against schemas/ledger-events.schema.json with ajv."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm not installed: the KafkaJS + ajv interop consumer cannot run")
    if not all((INTEROP / "node_modules" / pkg).is_dir() for pkg in ("kafkajs", "ajv", "ajv-formats")):
        pytest.skip("KafkaJS/ajv not installed in tests/interop (scripts/install.sh --test runs npm install)")
    books = ledger_with_every_movement(f"sqlite:///{tmp_path}/ledger.db", 10_000, seed=3)
    topic = f"out-{topics[0]}"
    stats = Relay(books.store, kafka_bootstrap, topic=topic).run(until_idle_s=0.5)
    types = {e.type for e in store_events(books.store)}
    assert types == set(outbound.TYPES.values())
    done = subprocess.run(["node", str(INTEROP / "consume_validate.js"), kafka_bootstrap, topic, str(outbound.SCHEMA_FILE),
                           str(stats.messages), "120000"], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\nKafkaJS + ajv: {result}")
    assert result["self_check"] is True  # the validator rejects messages that break the contract
    assert result["invalid"] == 0, result["errors"]
    assert result["key_mismatch"] == 0
    assert result["messages"] == result["distinct"] == stats.messages


def test_a_second_relay_of_the_same_topic_continues_from_the_furthest_position():
    """Tracking rows only move forward: a relay that acknowledged less than
    another relay of the same topic stored continues from there (it only duplicates)."""
    from eventsourcing.persistence import Tracking

    store = Store("memory://")
    store.recorder.insert_tracking(Tracking(tracking_name("t"), 7))
    behind = Relay(store, "127.0.0.1:1", topic="t")
    behind.relayed = 3
    behind._track(5)
    assert behind.relayed == 7 and store.position(tracking_name("t")) == 7
    behind._track(9)
    assert behind.relayed == 9 and store.position(tracking_name("t")) == 9


def test_relay_from_a_postgresql_store(postgres_url, kafka_bootstrap, topics):
    """The same relay over PostgreSQL (its notification log and tracking table)."""
    books = Books(Store(postgres_url), Rules())
    _ingest(books, SAMPLE)
    books.settle("2026-02-01T00:00:00Z")
    books.payout("2026-02-01T00:00:00Z")
    topic = f"out-{topics[0]}"
    stats = Relay(books.store, kafka_bootstrap, topic=topic).run(until_idle_s=0.2)
    values = [json.loads(m.value) for m in read_topic(kafka_bootstrap, topic, stats.messages)]
    assert len(values) == stats.messages == 8
    assert [v["type"] for v in sorted(values, key=lambda v: _order_key(v["event_id"]))] == [
        "commission.accrued", "commission.accrued", "commission.reversed", "commission.reversed",
        "commission.settled", "commission.settled", "payout.paid", "payout.paid"]
    assert _fold(values) == books.balances()
    assert Store(postgres_url).position(tracking_name(topic)) == stats.position > 0


def test_demo_relays_and_prints_published_messages(kafka_bootstrap):
    done = subprocess.run([EXE, "demo", "--events", "2000", "--bootstrap-servers", kafka_bootstrap],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"relay: published [1-9]\d* ledger events", done.stdout), done.stdout
    printed = [outbound.decode(line.strip().encode()) for line in done.stdout.splitlines() if line.startswith('  {"type":')]
    assert {e.type for e in printed} >= {"commission.accrued", "commission.settled", "payout.paid"}


def test_broker_gone_while_following_is_retried_and_skips_nothing(tmp_path, topics):
    """The relay is following the store when its broker goes away; new records
    arrive meanwhile. Its sends fail, it backs off, and its stored position does
    not move. A broker comes back on the same address (Tansu keeps topics in
    memory only, so it comes back empty): the relay sends, from its stored
    position, exactly what was not yet acknowledged — nothing is missing."""
    import threading

    from devkit.broker import EmbeddedBroker, free_port

    books = ledger_with_every_movement(f"sqlite:///{tmp_path}/ledger.db", 5_000, seed=9)
    topic = f"out-{topics[0]}"
    port = free_port()
    metrics = RelayMetrics()
    relay = Relay(books.store, f"127.0.0.1:{port}", topic=topic, metrics=metrics,
                  producer_options={"delivery_timeout_ms": 2_000, "request_timeout_ms": 1_000, "max_block_ms": 2_000})
    result: list = []
    thread = threading.Thread(target=lambda: result.append(relay.run()), daemon=True)

    def wait_until(condition, timeout_s: float = 90) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.05)

    try:
        with EmbeddedBroker(port=port):
            thread.start()
            acknowledged = max(nid for nid, _, _ in segments(books.store))
            wait_until(lambda: relay.relayed == acknowledged)
        books.settle("2026-03-15T00:00:00Z")  # new movements while the broker is away
        books.adjust("p3", "CNY", 100, "bonus", "test")
        wait_until(lambda: metrics.send_failures._value.get() >= 2)
        assert books.store.position(tracking_name(topic)) == relay.relayed == acknowledged
        assert metrics.lag_records._value.get() == 2
        with EmbeddedBroker(port=port) as broker:
            last = max(nid for nid, _, _ in segments(books.store))
            wait_until(lambda: relay.relayed == last)
            relay.stop.set()
            thread.join(timeout=60)
            unacknowledged = {e.event_id for e in store_events(books.store, after=acknowledged)}
            messages = read_topic(broker.bootstrap, topic, len(unacknowledged))
    finally:
        relay.stop.set()
        thread.join(timeout=60)
    assert {json.loads(m.value)["event_id"] for m in messages} == unacknowledged
    assert len(unacknowledged) > 100 and result[0].failures >= 2
    assert books.store.position(tracking_name(topic)) == last
