"""Kafka as real producers send it (issue 18), against the real broker.

- Streams compressed by producers nobody here wrote — kafka-python's producer
  with each codec (its codec module over python-snappy, lz4, zstandard, gzip)
  and KafkaJS (gzip, and snappy through kafkajs-snappy) — consumed by
  ``consume --until-idle``: exit 0, balances equal to a clean file ingest.
- A poison batch alone in its batch on each topic (a bad CRC, a compressed
  payload that does not decompress) becomes one ``malformed_json`` dead letter
  at its source position; a header key that is not UTF-8 changes nothing.

(kcat is not used here: Debian's kcat 1.7.1 / librdkafka 2.0.2 cannot
negotiate ApiVersions with Tansu; see test_kafka.py.)
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from kafka import KafkaProducer

from consumers.kafka import ensure_topics
from devkit.synthetic import generate
from ledger.books import Books
from ledger.records import dead_letters_of
from ledger.store import Store
from schemas.peek import route_key
from tests.test_kafka import INTEROP, _nonzero, reference_balances
from tests.test_kafka_units import _batch

EXE = os.path.join(os.path.dirname(sys.executable), "commission-ledger")


def _produce_kafka_python(bootstrap: str, topics, lines: list[bytes], codec: str | None) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, linger_ms=20, batch_size=64 * 1024)
    try:
        for raw in lines:
            is_share, key = route_key(raw)
            producer.send(topics[1] if is_share else topics[0], value=raw, key=key)
        producer.flush()
    finally:
        producer.close()


def _produce_kafkajs(bootstrap: str, topics, lines: list[bytes], codec: str, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    done = subprocess.run(["node", str(INTEROP / "produce.js"), bootstrap, topics[0], topics[1], str(path), codec],
                          capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()[-2000:]


def _consume(url: str, bootstrap: str, topics) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, "--store", url, "consume", "--bootstrap-servers", bootstrap, "--topic", topics[0],
                           "--shares-topic", topics[1], "--until-idle", "3"], capture_output=True, timeout=300)


@pytest.mark.parametrize("producer,codec", [("kafka-python", "gzip"), ("kafka-python", "snappy"), ("kafka-python", "lz4"),
                                            ("kafka-python", "zstd"), ("kafkajs", "gzip"), ("kafkajs", "snappy")])
def test_a_stream_compressed_by_another_producer_is_consumed(tmp_path, kafka_bootstrap, topics, producer, codec):
    if producer == "kafkajs" and not (INTEROP / "node_modules" / "kafkajs-snappy").is_dir():
        pytest.skip("KafkaJS not installed (scripts/install.sh --test installs it with npm)")
    lines = list(generate(1_500, seed=21, malformed_rate=0, duplicate_rate=0))
    ensure_topics(kafka_bootstrap, {topics[0]: 2, topics[1]: 1, f"{topics[0]}.dlq": 1, f"{topics[1]}.dlq": 1})
    if producer == "kafkajs":
        _produce_kafkajs(kafka_bootstrap, topics, lines, codec, tmp_path)
    else:
        _produce_kafka_python(kafka_bootstrap, topics, lines, codec)
    url = f"sqlite:///{tmp_path}/ledger.db"
    done = _consume(url, kafka_bootstrap, topics)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    books = Books(Store(url))
    assert _nonzero(books.balances()) == reference_balances(lines)
    assert _letters(url) == []


def _letters(url: str) -> list:
    return [letter for _, _, record in Books(Store(url)).records() for letter in dead_letters_of(record)]


def produce_raw_batch(bootstrap: str, topic: str, partition: int, batch: bytes) -> int:
    """Append ``batch`` — bytes of our choosing, e.g. corrupt — to a partition as
    one produce request would carry it; its offset. (kafka-python's producer
    builds the request; its records are swapped for ``batch``: the broker
    stores what it is sent, as a broker stores what a faulty producer or disk
    handed it.)"""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=-1, retries=0)
    build = producer._sender._produce_request

    def with_our_bytes(node_id, acks, timeout, batches):
        request = build(node_id, acks, timeout, batches)
        for topic_data in request.topic_data:
            for partition_data in topic_data.partition_data:
                partition_data.records = batch
        return request

    producer._sender._produce_request = with_our_bytes
    try:
        return producer.send(topic, value=b"x", partition=partition).get(timeout=30).offset
    finally:
        producer.close()


def _with_crc(batch: bytearray) -> bytes:
    from kafka.record.util import calc_crc32c

    struct.pack_into(">I", batch, 17, calc_crc32c(memoryview(batch)[21:]))
    return bytes(batch)


def bad_crc_batch(value: bytes) -> bytes:
    batch = bytearray(_batch([(0, 1_767_225_600_000, b"k", value, [])]))
    batch[-3] ^= 0xFF
    return bytes(batch)


def undecodable_zstd_batch() -> bytes:
    batch = bytearray(_batch([(0, 1_767_225_600_000, b"k", b"{}", [])], compression=4))
    batch = batch[:61] + bytearray(b"\xa5" * 24)
    struct.pack_into(">i", batch, 8, len(batch) - 12)
    return _with_crc(batch)


def non_utf8_header_batch(value: bytes, key: bytes) -> bytes:
    batch = bytearray(_batch([(0, 1_767_225_600_000, key, value, [("hk", b"v")])]))
    at = bytes(batch).index(b"hk")
    batch[at:at + 2] = b"\xff\xfe"
    return _with_crc(batch)


def test_poison_batches_on_both_topics_become_dead_letters_and_the_rest_is_consumed(tmp_path, kafka_bootstrap, topics):
    lines = list(generate(1_200, seed=22, malformed_rate=0, duplicate_rate=0))
    ensure_topics(kafka_bootstrap, {topics[0]: 1, topics[1]: 1, f"{topics[0]}.dlq": 1, f"{topics[1]}.dlq": 1})
    half = len(lines) // 2
    _produce_kafka_python(kafka_bootstrap, topics, lines[:half], None)
    poison = {
        (topics[0], produce_raw_batch(kafka_bootstrap, topics[0], 0, bad_crc_batch(b'{"poison":1}'))),
        (topics[0], produce_raw_batch(kafka_bootstrap, topics[0], 0, undecodable_zstd_batch())),
        (topics[1], produce_raw_batch(kafka_bootstrap, topics[1], 0, bad_crc_batch(b'{"poison":2}'))),
    }
    # An event with a header key that is not UTF-8: read and applied as any other.
    header_event = next(raw for raw in lines[half:] if json.loads(raw)["type"] == "order")
    produce_raw_batch(kafka_bootstrap, topics[0], 0, non_utf8_header_batch(header_event, b"b"))
    rest = [raw for raw in lines[half:] if raw is not header_event]
    _produce_kafka_python(kafka_bootstrap, topics, rest, None)
    url = f"sqlite:///{tmp_path}/ledger.db"
    done = _consume(url, kafka_bootstrap, topics)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    assert b"unreadable record batch" in done.stderr
    books = Books(Store(url))
    assert _nonzero(books.balances()) == reference_balances(lines)
    letters = _letters(url)
    assert {(l.source.topic, l.source.offset) for l in letters} == poison
    assert {l.reason for l in letters} == {"malformed_json"}
    assert all(l.raw[:8] == struct.pack(">q", l.source.offset) for l in letters)  # the batch's bytes, as stored
    audit = subprocess.run([EXE, "--store", url, "audit", "replay"], capture_output=True)
    assert audit.returncode == 0, audit.stdout.decode()[-2000:]
    again = _consume(url, kafka_bootstrap, topics)  # a restart finds nothing left to do
    assert again.returncode == 0 and len(_letters(url)) == 3


def _recreate(bootstrap: str, topic: str) -> None:
    import time

    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.delete_topics([topic])
        deadline = time.monotonic() + 30
        while topic in admin.list_topics() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        admin.close()
    ensure_topics(bootstrap, {topic: 1})


def test_a_stored_position_past_a_recreated_log_stops_the_partition(tmp_path, kafka_bootstrap, topics):
    lines = list(generate(600, seed=23, malformed_rate=0, duplicate_rate=0))
    first = [raw for raw in lines if json.loads(raw)["type"] == "share"] + [raw for raw in lines if json.loads(raw)["type"] != "share"]
    ensure_topics(kafka_bootstrap, {topics[0]: 1, topics[1]: 1, f"{topics[0]}.dlq": 1, f"{topics[1]}.dlq": 1})
    _produce_kafka_python(kafka_bootstrap, topics, first[:len(first) - 50], None)
    url = f"sqlite:///{tmp_path}/ledger.db"
    assert _consume(url, kafka_bootstrap, topics).returncode == 0
    stored = Store(url).position(f"kafka:{topics[0]}:0|{topics[0]}|0")
    assert stored is not None and stored > 50
    _recreate(kafka_bootstrap, topics[0])  # the events log starts again at 0, below the stored position
    _produce_kafka_python(kafka_bootstrap, topics, first[len(first) - 50:], None)
    done = _consume(url, kafka_bootstrap, topics)
    err = done.stderr.decode()
    assert done.returncode == 1, err[-3000:]
    assert (f"topic {topics[0]} partition 0: stored position {stored} is outside the log's range [0, 50): "
            "partition stopped, nothing skipped") in err
    assert Store(url).position(f"kafka:{topics[0]}:0|{topics[0]}|0") == stored  # nothing moved
    # Accepting the loss cannot move a stored position backwards: still stopped, saying why.
    done = subprocess.run([EXE, "--store", url, "consume", "--bootstrap-servers", kafka_bootstrap, "--topic", topics[0],
                           "--shares-topic", topics[1], "--until-idle", "3", "--on-truncated-log", "earliest"],
                          capture_output=True, timeout=300)
    assert done.returncode == 1
    assert "partition stopped: offset 0 (--on-truncated-log earliest) lies below the stored position" in done.stderr.decode()
    assert Store(url).position(f"kafka:{topics[0]}:0|{topics[0]}|0") == stored
