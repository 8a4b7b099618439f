"""The dead-letter copy (SPEC §9, issue 11 item 2): never a loop, never longer
than its budget, every failure counted and logged.

The first part drives ``DeadLetterTopic`` with a scripted producer and a fake
clock (the retry policy, exactly); the second runs the whole consumer against
the embedded broker, with failures the broker really produces: a dead letter
over the producer's limit, a broker that refuses every copy (Tansu's schema
validation), a dead-letter topic whose name the client refuses, and the
broker going away in the middle of a batch's copies.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import (
    InvalidRecordError, KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError, NotLeaderForPartitionError,
    UnknownTopicOrPartitionError,
)

from consumers.kafka import LedgerConsumer, ensure_topics, publish
from consumers.kafka.dlq import (
    CopiedShares, CopyPolicy, DeadLetterTopic, failure_reason, producer_config,
)
from consumers.kafka.metrics import ConsumerMetrics
from devkit.broker import free_port, tansu_binary, wait_for_port
from devkit.synthetic import generate
from ledger.app import Ledger
from ledger.books import Books
from ledger.config import ConfigError
from ledger.records import DeadLetter, Source
from ledger.store import JournalStore, Store
from schemas.peek import route_key
from tests.test_kafka import EXE, FlakyProxy, _consumed, _nonzero, reference_balances

# ------------------------------------------------------------- the policy
class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 3))
        self.now += seconds


class Future:
    def __init__(self, outcome) -> None:
        self.outcome = outcome

    def get(self, timeout=None):
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


class ScriptedProducer:
    """``script(value, attempt)`` → ("ok" | "fail" | "raise", exception, seconds the call takes)."""

    def __init__(self, clock: Clock, script) -> None:
        self.clock = clock
        self.script = script
        self.sends: list[bytes] = []
        self.topics: list[str] = []
        self.attempt: dict[bytes, int] = {}

    def send(self, topic, value, headers):
        self.sends.append(value)
        self.topics.append(topic)
        n = self.attempt[value] = self.attempt.get(value, 0) + 1
        kind, exc, seconds = self.script(value, n)
        self.clock.now += seconds
        if kind == "raise":
            raise exc
        return Future(exc if kind == "fail" else "acknowledged")


def letters(n: int, topic: str = "ev") -> list[DeadLetter]:
    return [DeadLetter("malformed_json", "x", Source(topic=topic, partition=1, offset=i), f"m{i}".encode()) for i in range(n)]


def sink(script, policy: CopyPolicy = CopyPolicy()) -> tuple[DeadLetterTopic, ScriptedProducer, Clock]:
    clock = Clock()
    producer = ScriptedProducer(clock, script)
    return DeadLetterTopic(producer, "ev.dlq", policy, routes={"sh": "sh.dlq"}, clock=clock, sleep=clock.sleep), producer, clock


def test_a_dead_letter_goes_to_the_dead_letter_topic_of_the_topic_it_came_from():
    """SPEC §9: a bad share on ``<shares-topic>.dlq``, a bad event on ``<topic>.dlq``."""
    topic, producer, clock = sink(lambda value, n: ("ok", None, 0.001))
    mixed = [letters(2)[0], letters(2, topic="sh")[1], DeadLetter("malformed_json", "x", Source(file="f", line=1), b"f1")]
    report = topic.write(mixed)
    assert report.sent == 3 and producer.topics == ["ev.dlq", "sh.dlq", "ev.dlq"]  # not from Kafka: the default topic


def test_one_dead_letter_topic_stalled_on_metadata_does_not_hold_up_the_other():
    """Metadata trouble is a topic's: the shares' copies wait (the rest of the
    round is not sent there), the events' copies go through in the same round."""
    def script(value, n):
        if value.startswith(b"s"):
            return "raise", KafkaTimeoutError("Failed to update metadata after 1.0 secs."), 1.0
        return "ok", None, 0.001

    topic, producer, clock = sink(script, CopyPolicy(budget_s=1.05))
    mixed = [DeadLetter("malformed_json", "x", Source(topic=t, partition=0, offset=i), f"{t[0]}{i}".encode())
             for i, t in enumerate(["sh", "ev", "sh", "ev"])]
    report = topic.write(mixed)
    assert report.sent == 2 and [f.letter.raw for f in report.failures] == [b"s0", b"s2"]
    assert producer.sends == [b"s0", b"e1", b"e3"] and report.attempts == 1  # the next pause would end past the budget


def test_copies_acknowledged_on_the_first_try_are_not_retried():
    topic, producer, clock = sink(lambda value, n: ("ok", None, 0.001))
    report = topic.write(letters(3))
    assert (report.sent, report.failures, report.attempts, clock.slept) == (3, [], 1, [])


def test_retriable_failures_are_sent_again_after_doubling_pauses_and_only_they():
    def script(value, n):
        if value == b"m1" and n <= 3:
            return "fail", NotLeaderForPartitionError(), 0.01
        return "ok", None, 0.01

    topic, producer, clock = sink(script)
    report = topic.write(letters(3))
    assert (report.sent, report.failures, report.attempts, report.retries) == (3, [], 4, 3)
    assert clock.slept == [0.1, 0.2, 0.4]
    assert producer.sends == [b"m0", b"m1", b"m2", b"m1", b"m1", b"m1"]


def test_a_copy_that_never_goes_through_is_given_up_within_the_budget(caplog):
    """A missing topic: each send blocks on metadata for max_block_ms, then
    times out; the rest of that round is not sent (it would wait the same)."""
    policy = CopyPolicy(budget_s=3.0)
    topic, producer, clock = sink(lambda value, n: ("raise", KafkaTimeoutError("Failed to update metadata after 1.0 secs."),
                                                    policy.max_block_ms / 1000), policy)
    with caplog.at_level(logging.WARNING, "commission_ledger.consume"):
        report = topic.write(letters(20))
    assert report.sent == 0 and [f.reason for f in report.failures] == ["timeout"] * 20
    assert len(producer.sends) == report.attempts == 3  # one blocked send per round
    assert clock.slept == [0.1, 0.2] and report.seconds == clock.now <= policy.budget_s + policy.max_block_ms / 1000
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 12  # ten one by one, the rest in one line, then the topic's cool-down
    assert lines[0].startswith("dead-letter copy to ev.dlq given up (timeout) after 3 attempt(s)")
    assert "topic ev partition 1 offset 0 (malformed_json): KafkaTimeoutError: Failed to update metadata" in lines[0]
    assert lines[-2] == "dead-letter copy to ev.dlq given up for 10 more: " + ", ".join(f"ev/1@{i}" for i in range(10, 20))
    assert lines[-1].startswith("dead-letter topic ev.dlq unavailable (timeout: ")


def test_pauses_stop_at_their_cap_and_the_budget_bounds_the_waiting():
    policy = CopyPolicy(budget_s=10.0, first_pause_s=0.5, max_pause_s=2.0)
    topic, producer, clock = sink(lambda value, n: ("fail", KafkaConnectionError(), 0.0), policy)
    report = topic.write(letters(2))
    assert clock.slept == [0.5, 1.0, 2.0, 2.0, 2.0, 2.0] and clock.now == 9.5  # the next pause would end past 10 s
    assert [f.reason for f in report.failures] == ["broker_unavailable"] * 2


def test_permanent_failures_are_not_retried_and_do_not_stop_the_others():
    outcomes = {
        b"m0": ("raise", MessageSizeTooLargeError("The message is 2097800 bytes when serialized ..."), 0),
        b"m1": ("fail", InvalidRecordError(), 0),
        b"m2": ("raise", IndexError("Cannot choose from an empty sequence"), 0),  # a topic with no partitions
        b"m3": ("raise", ValueError('Topic name "a b.dlq" is illegal'), 0),
        b"m4": ("ok", None, 0),
    }
    topic, producer, clock = sink(lambda value, n: outcomes[value])
    report = topic.write(letters(5))
    assert report.sent == 1 and report.attempts == 1 and clock.slept == []
    assert [(f.letter.raw, f.reason) for f in report.failures] == [
        (b"m0", "too_large"), (b"m2", "index"), (b"m3", "invalid_topic"), (b"m1", "refused")]


def test_failure_reasons_are_a_small_set_of_names():
    assert failure_reason(KafkaTimeoutError()) == "timeout"
    assert failure_reason(NotLeaderForPartitionError()) == "broker_unavailable"
    assert failure_reason(IndexError()) == "index"

    class SomeNewBrokerError(Exception):
        pass

    assert failure_reason(SomeNewBrokerError()) == "some_new_broker"


def test_the_budget_comes_from_the_environment():
    assert CopyPolicy.from_environ({}) == CopyPolicy()
    assert CopyPolicy.from_environ({"LEDGER_DLQ_BUDGET_S": "0.5"}).budget_s == 0.5
    assert CopyPolicy.from_environ({"LEDGER_DLQ_BUDGET_S": "0.5"}).max_block_ms == 500
    for bad in ("", "soon", "0", "-1", "nan", "inf", "3601"):
        with pytest.raises(ConfigError, match="LEDGER_DLQ_BUDGET_S"):
            CopyPolicy.from_environ({"LEDGER_DLQ_BUDGET_S": bad})


def test_the_producer_may_send_whatever_the_consumer_can_fetch():
    consumer = KafkaConsumer(bootstrap_servers="127.0.0.1:1", api_version=(3, 9))  # not connected: only its settings
    try:
        largest = consumer.config["receive_message_max_bytes"]
        assert largest >= consumer.config["fetch_max_bytes"] + consumer.config["max_partition_fetch_bytes"]
    finally:
        consumer.close()
    config = producer_config(CopyPolicy(), largest)
    assert config["max_request_size"] > largest >= 50 * 1024 * 1024  # the old producer: 1 MiB
    assert (config["enable_idempotence"], config["retries"], config["max_block_ms"]) == (False, 0, 1000)


def test_a_bad_share_is_copied_once_per_process():
    copied = CopiedShares("sh")
    share_letters = letters(3, topic="sh")
    assert copied.fresh(share_letters) == share_letters
    copied.copied({1: 3})  # the first task's batch took shares 0..2 of partition 1
    assert copied.fresh(share_letters) == []  # the second task applies them too
    later = DeadLetter("malformed_json", "x", Source(topic="sh", partition=1, offset=3), b"m3")
    other_partition = DeadLetter("malformed_json", "x", Source(topic="sh", partition=0, offset=0), b"p0")
    released_refund = DeadLetter("refund_exceeds_order", "x", Source(topic="ev", partition=1, offset=0), b"r")
    assert copied.fresh([later, other_partition, released_refund]) == [later, other_partition, released_refund]
    copied.copied({1: 2})  # a task behind the others: the mark does not go back
    assert copied.next_offset == {1: 3}


def test_copy_metrics():
    from prometheus_client import generate_latest

    topic, producer, clock = sink(lambda value, n: ("fail", InvalidRecordError(), 0) if value == b"m0" else ("ok", None, 0))
    metrics = ConsumerMetrics()
    metrics.observe_dlq(topic.write(letters(3)))
    text = generate_latest(metrics.registry).decode()
    assert "ledger_dlq_copies_sent_total 2.0" in text
    assert 'ledger_dlq_send_failures_total{reason="refused"} 1.0' in text


# ------------------------------------------------- against the real broker
def _read_all(bootstrap: str, topic: str, expect: int, timeout_s: float = 15.0) -> list:
    """The messages of every partition of ``topic``, once ``expect`` arrived (or the time is up)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        consumer.seek_to_beginning()
        messages: list = []
        deadline = time.monotonic() + timeout_s
        while len(messages) < expect and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=300).values():
                messages += batch
        return messages
    finally:
        consumer.close()


def send_routed(bootstrap: str, topic: str, shares_topic: str, lines: list) -> list:
    """Send each line as ``publish`` would (SPEC §1 topics and keys), without
    creating any topic; an item ``(topic, partition, value)`` is sent there
    as it is (a hostile message; ``value`` None: a tombstone). Returns the
    RecordMetadata of those items, in order."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, max_request_size=16 * 1024 * 1024, acks="all", linger_ms=10)
    placed = []
    try:
        for item in lines:
            if isinstance(item, tuple):
                to, partition, value = item
                placed.append(producer.send(to, value=value, key=b"k" if value is None else None, partition=partition))
                continue
            is_share, key = route_key(item)
            producer.send(shares_topic if is_share else topic, value=item, key=key)
        producer.flush(timeout=60)
        return [future.get(timeout=0) for future in placed]
    finally:
        producer.close()


def test_a_dead_letter_over_the_producers_limit_is_a_counted_failure_and_the_stream_moves_on(tmp_path, kafka_bootstrap, topics):
    """The old producer's limit (1 MiB), kept here on purpose: a 2 MB
    malformed message is a dead letter in the ledger, its copy a counted
    failure; what follows it in the partition is applied."""
    lines = list(generate(1_500, seed=4, malformed_rate=0))
    ensure_topics(kafka_bootstrap, {topics[0]: 1, topics[1]: 1, f"{topics[0]}.dlq": 1})
    publish(lines[:700], kafka_bootstrap, topic=topics[0], shares_topic=topics[1], partitions=1)
    huge = b'{"type":"click","event_id":"' + b"x" * 2_000_000  # never ends: malformed_json
    send_routed(kafka_bootstrap, topics[0], topics[1], [(topics[0], 0, huge), (topics[0], 0, b"[1, 2, 3]")])
    publish(lines[700:], kafka_bootstrap, topic=topics[0], shares_topic=topics[1], partitions=1)

    url = f"sqlite:///{tmp_path}/ledger.db"
    consumer = LedgerConsumer(Store(url), kafka_bootstrap, topic=topics[0], shares_topic=topics[1],
                              dlq_producer_options={"max_request_size": 1024 * 1024})
    started = time.monotonic()
    stats = consumer.run(until_idle_s=2.0)
    assert time.monotonic() - started < 60
    assert stats.dlq_failures == {"too_large": 1} and stats.dlq_copies == 1  # "[1, 2, 3]" went through
    assert stats.counts.reasons == {"malformed_json": 1, "schema_violation": 1}
    assert _nonzero(Books(Store(url)).balances()) == reference_balances(lines)
    events = sum(1 for raw in lines if b'"type":"share"' not in raw) + 2
    assert _consumed(url, topics[0], partitions=1) == events  # nothing after the huge one was left behind
    copies = _read_all(kafka_bootstrap, f"{topics[0]}.dlq", 1)
    assert [m.value for m in copies] == [b"[1, 2, 3]"]


def test_a_bad_share_is_copied_to_the_shares_dead_letter_topic_which_publish_creates(tmp_path, kafka_bootstrap, topics):
    """SPEC §9 "on Kafka also go to ``<topic>.dlq``": a bad share's copy goes
    to ``<shares-topic>.dlq`` (once, though both tasks apply it), a bad event's
    to ``<events-topic>.dlq``; ``publish`` creates both dead-letter topics."""
    from kafka import KafkaAdminClient

    events_topic, shares_topic = topics
    lines = list(generate(1_000, seed=6, malformed_rate=0, duplicate_rate=0))
    publish(lines, kafka_bootstrap, topic=events_topic, shares_topic=shares_topic, partitions=2)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        assert {f"{events_topic}.dlq", f"{shares_topic}.dlq"} <= set(admin.list_topics())
    finally:
        admin.close()
    bad_share, bad_event = b'{"type":"share","event_id":"bad-s"', b'{"type":"click","event_id":"bad-c"'
    placed = send_routed(kafka_bootstrap, events_topic, shares_topic, [(shares_topic, 1, bad_share), (events_topic, 0, bad_event)])
    stats = LedgerConsumer(Store(f"sqlite:///{tmp_path}/ledger.db"), kafka_bootstrap, topic=events_topic,
                           shares_topic=shares_topic).run(until_idle_s=2.0)
    assert stats.counts.reasons == {"malformed_json": 3}  # the share in both tasks' journals, the event in one
    assert stats.dlq_copies == 2 and not stats.dlq_failures
    for dlq, value, source in ((f"{shares_topic}.dlq", bad_share, placed[0]), (f"{events_topic}.dlq", bad_event, placed[1])):
        copies = _read_all(kafka_bootstrap, dlq, 2, timeout_s=5)
        assert [m.value for m in copies] == [value], dlq
        h = dict(copies[0].headers)
        assert (h["source.topic"].decode(), int(h["source.partition"]), int(h["source.offset"])) == (
            source.topic, source.partition, source.offset)


def file_ingest_dead_letters(lines: list[bytes]) -> int:
    ledger = Ledger(JournalStore(Store("memory://"), "main"))
    return ledger.ingest((raw, Source(file="ref", line=i)) for i, raw in enumerate(lines, 1)).dead_letters


def _start_refusing_broker(tmp_path: Path, refused_topic: str):
    """A Tansu broker whose schema registry holds a JSON schema for
    ``refused_topic`` that no record satisfies: the broker answers every
    produce to it with INVALID_RECORD (error 87) and accepts every other topic."""
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / f"{refused_topic}.json").write_text(json.dumps(
        {"type": "object", "properties": {"value": {"type": "object", "required": ["nothing-has-this"]}}}))
    port = free_port()
    log = open(tmp_path / "tansu.log", "wb")
    proc = subprocess.Popen([tansu_binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{port}",
                             "--advertised-listener-url", f"tcp://127.0.0.1:{port}", "--schema-registry", "file://./schemas"],
                            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if not wait_for_port("127.0.0.1", port, 20):
        proc.kill()
        pytest.fail(f"the refusing broker did not start: {(tmp_path / 'tansu.log').read_text()[-2000:]}")
    return proc, f"127.0.0.1:{port}"


def _scrape(port: int) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text) for s in f.samples}


@dataclass
class Watched:
    returncode: int
    stdout: str
    stderr: str
    samples: dict  # the last metrics read before the process exited


def consume_watching_metrics(url: str, bootstrap: str, topics, tmp_path: Path, env: dict | None = None) -> Watched:
    """``commission-ledger consume --until-idle 5 --metrics-port P``, its
    metrics read over HTTP every 0.3 s while it runs."""
    port = free_port()
    log_path = tmp_path / "consume.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([EXE, "--store", url, "consume", "--bootstrap-servers", bootstrap, "--topic", topics[0],
                                 "--shares-topic", topics[1], "--until-idle", "5", "--max-poll-records", "500",
                                 "--metrics-port", str(port)],
                                stdout=subprocess.PIPE, stderr=log_file, env={**os.environ, **(env or {})})
        samples: dict = {}
        while proc.poll() is None:
            try:
                samples = _scrape(port)
            except OSError:
                pass
            time.sleep(0.3)
        out = proc.stdout.read().decode()
    return Watched(proc.returncode, out, log_path.read_text(errors="replace"), samples)


def test_a_broker_refusing_every_copy_does_not_hold_up_the_stream(tmp_path, topics):
    """``commission-ledger consume`` against a broker that refuses every
    record of ``<topic>.dlq``: each batch with dead letters gives its copies up
    at once (a refusal is not retried), counts and logs them, and commits;
    the process exits 0 with the books of a clean ingest. The counters are
    read over HTTP from ``--metrics-port`` while it runs."""
    proc, bootstrap = _start_refusing_broker(tmp_path, f"{topics[0]}.dlq")
    try:
        lines = list(generate(4_000, seed=12, malformed_rate=0.01))
        publish(lines, bootstrap, topic=topics[0], shares_topic=topics[1])
        url = f"sqlite:///{tmp_path}/ledger.db"
        started = time.monotonic()
        run = consume_watching_metrics(url, bootstrap, topics, tmp_path, {"LEDGER_DLQ_BUDGET_S": "2"})
        elapsed = time.monotonic() - started
        out, text, samples = run.stdout, run.stderr, run.samples
        assert run.returncode == 0, text[-3000:]
        failed = ("ledger_dlq_send_failures_total", (("reason", "refused"),))
        dead = file_ingest_dead_letters(lines)
        assert dead > 10 and f"dead_letters={dead}" in out
        assert samples.get(failed) == dead, {k: v for k, v in samples.items() if k[0].startswith("ledger_dlq")}
        assert samples.get(("ledger_dlq_copies_sent_total", ())) == 0
        assert samples.get(("ledger_dlq_send_retries_total", ())) == 0  # a refusal is final
        refused = [line for line in text.splitlines() if "given up (refused) after 1 attempt(s)" in line]
        assert refused and f"topic {topics[0]} partition " in refused[0] and "InvalidRecordError" in refused[0]
        assert "batch will be retried" not in text and "reopening" not in text
        assert elapsed < 60, elapsed  # 4 000 events, at most 8 batches per partition: no loop
        assert _nonzero(Books(Store(url)).balances()) == reference_balances(lines)
        letters_ = json.loads(subprocess.run([EXE, "--store", url, "dead-letters", "--format", "json"],
                                             capture_output=True, check=True).stdout)
        assert len(letters_) == dead  # the ledger's dead letters are the record of truth
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_dead_letter_topic_the_client_cannot_name_is_counted_not_retried(tmp_path, kafka_bootstrap):
    """An events topic of 249 characters (the longest legal name) has a
    dead-letter topic of 253: illegal, refused by the client in ``send()``
    (ValueError, not a KafkaError — the old code would have crashed)."""
    topic = "ev-" + "n" * 246
    assert len(topic) == 249
    shares = f"sh-{time.monotonic_ns()}"
    lines = list(generate(600, seed=3, malformed_rate=0.02))
    ensure_topics(kafka_bootstrap, {topic: 2, shares: 1})  # not publish(): it would create the .dlq topic
    send_routed(kafka_bootstrap, topic, shares, lines)
    url = f"sqlite:///{tmp_path}/ledger.db"
    stats = LedgerConsumer(Store(url), kafka_bootstrap, topic=topic, shares_topic=shares).run(until_idle_s=2.0)
    assert stats.counts.dead_letters > 0
    assert stats.dlq_failures == {"invalid_topic": stats.counts.dead_letters} and stats.dlq_copies == 0
    assert _nonzero(Books(Store(url)).balances()) == reference_balances(lines)


def test_the_broker_going_away_during_the_copies_costs_one_budget(tmp_path, topics):
    """The broker disappears (through a proxy that is every client's only
    route to it) just as the first batch's copies are sent: they are not
    acknowledged, and are given up when the budget (2 s) is spent; the batch
    commits without the broker. Once it is back, the rest of the stream is
    consumed and its copies go through."""
    from devkit.broker import EmbeddedBroker

    lines = list(generate(3_000, seed=19, malformed_rate=0.02))
    proxy_port = free_port()
    reports: list[tuple[float, object]] = []

    class OutageDuringTheFirstCopies(LedgerConsumer):
        def _copy_dead_letters(self, batch, letters_):
            first = letters_ and not reports
            if first:
                proxy.outage()
            started = time.monotonic()
            report = super()._copy_dead_letters(batch, letters_)
            if report is not None:
                reports.append((time.monotonic() - started, report))
            if first:
                proxy.restore()
            return report

    with EmbeddedBroker(advertised_port=proxy_port) as broker:
        proxy = FlakyProxy(broker.bootstrap, proxy_port)
        via_proxy = f"127.0.0.1:{proxy_port}"
        try:
            publish(lines, via_proxy, topic=topics[0], shares_topic=topics[1], partitions=1)
            url = f"sqlite:///{tmp_path}/ledger.db"
            consumer = OutageDuringTheFirstCopies(Store(url), via_proxy, topic=topics[0], shares_topic=topics[1],
                                                  max_poll_records=500, dlq_policy=CopyPolicy(budget_s=2.0))
            stats = consumer.run(until_idle_s=4.0)
        finally:
            proxy.close()
    seconds, first = reports[0]
    assert first.sent == 0 and first.failures, first
    assert {f.reason for f in first.failures} <= {"broker_unavailable", "timeout"}, first.failures
    assert 1.8 <= seconds <= 2.0 + 1.5, seconds  # the budget, plus at most one send blocked on metadata
    assert len(reports) > 1 and all(not r.failures and r.sent for _, r in reports[1:])
    assert stats.dlq_copies == stats.counts.dead_letters - len(first.failures)
    assert stats.dlq_failures == {f.reason: len(first.failures) for f in first.failures[:1]}
    assert _nonzero(Books(Store(url)).balances()) == reference_balances(lines)


def test_a_missing_dead_letter_topic_is_remembered_for_a_cool_down_then_tried_again():
    """Issue 18: a topic that took none of a batch's copies is not tried again
    for COOL_DOWN_S; its copies are counted as failed at once (same reason),
    so the next batches do not each spend the budget on it."""
    from consumers.kafka.dlq import COOL_DOWN_S

    missing = {"on": True}

    def script(value, n):
        if missing["on"]:
            return "fail", UnknownTopicOrPartitionError(), 0.3
        return "ok", None, 0.001

    topic, producer, clock = sink(script, CopyPolicy(budget_s=1.0))
    first = topic.write(letters(2))
    assert first.sent == 0 and [f.reason for f in first.failures] == ["topic_missing"] * 2 and first.seconds >= 1.0
    tried = len(producer.sends)
    for _ in range(5):  # the next batches: counted as failed, not tried, no time spent
        before = clock.now
        report = topic.write(letters(3))
        assert report.sent == 0 and [(f.reason, f.cooling) for f in report.failures] == [("topic_missing", True)] * 3
        assert clock.now == before and len(producer.sends) == tried
    # The other topic is not affected.
    assert topic.write(letters(1, topic="sh")).failures[0].cooling is False
    missing["on"] = False
    clock.now += COOL_DOWN_S
    report = topic.write(letters(2))
    assert report.sent == 2 and report.failures == []


def test_a_copy_too_large_does_not_cool_its_topic_down():
    topic, producer, clock = sink(lambda value, n: ("fail", MessageSizeTooLargeError(), 0.001))
    assert [f.reason for f in topic.write(letters(1)).failures] == ["too_large"]
    assert topic.cooling == {}


def test_a_dead_letter_topic_missing_at_start_is_a_warning(caplog):
    topic, producer, clock = sink(lambda value, n: ("ok", None, 0.001))
    with caplog.at_level("WARNING", logger="commission_ledger.consume"):
        topic.expect({"ev.dlq", "ev", "sh"})
    assert "dead-letter topic sh.dlq does not exist (consume does not create topics)" in caplog.text
    assert "ev.dlq does not exist" not in caplog.text
