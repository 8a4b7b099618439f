"""The Kafka consumer's pure parts, without a broker: the stored position names
(existing stores depend on their format), a batch's positions and order, the
shares buffer's trim, and the dead-letter headers. tests/test_kafka.py runs the
whole consumer against a real broker."""

from __future__ import annotations

import pytest
from kafka.consumer.fetcher import ConsumerRecord

from consumers.kafka.clients import Backoff
from consumers.kafka.dlq import headers
from consumers.kafka.positions import PositionKey, journal_name
from consumers.kafka.shares import SharesFeed
from consumers.kafka.tasks import Task
from ledger.records import DeadLetter, Source


# ------------------------------------------------------------------ positions
def test_stored_position_names_keep_their_format():
    key = PositionKey(journal_name("commission-events", 3), "commission-shares", 1)
    assert key.stored_name == "kafka:commission-events:3|commission-shares|1"
    assert PositionKey.from_stored_name(key.stored_name) == key
    tracking = key.tracking(42)
    assert (tracking.application_name, tracking.notification_id) == (key.stored_name, 42)


@pytest.mark.parametrize("name", ["kafka:t:0|t", "a|b|c|0", "kafka:t:0|t|x", "kafka:t:0|t|-1", "kafka:t:0|t|"])
def test_a_name_that_is_not_a_stored_position_is_refused(name):
    with pytest.raises(ValueError):
        PositionKey.from_stored_name(name)


@pytest.mark.parametrize(("journal", "topic", "partition"), [("a|b", "t", 0), ("j", "t|u", 0), ("j", "t", -1), ("j", "t", True)])
def test_a_position_that_would_read_back_as_another_is_refused(journal, topic, partition):
    with pytest.raises(ValueError):
        PositionKey(journal, topic, partition)


# ------------------------------------------------------- a task's next batch
def _share(event_id: str, at: str) -> bytes:
    return (f'{{"type":"share","event_id":"{event_id}","occurred_at":"{at}",'
            f'"share_id":"s-{event_id}","promoter_id":"P"}}').encode()


def _message(offset: int, value: bytes | None) -> ConsumerRecord:
    return ConsumerRecord("ev", 2, None, offset, 0, 0, None, value, [], None, 0, 0, 0)


def _task(next_offsets: dict[PositionKey, int]) -> Task:
    journal = journal_name("ev", 2)
    return Task(2, None, PositionKey(journal, "ev", 2), "sh", next_offsets)  # batch() does not touch the ledger


def test_a_batch_takes_unrecorded_shares_in_event_time_order_then_events_after_the_position():
    feed = SharesFeed(None, "sh", 100)
    feed.buffer = {
        0: [(5, _share("b", "2026-03-01T12:00:02Z")), (6, b"garbage"), (7, _share("a", "2026-03-01T12:00:03Z"))],
        1: [(0, _share("c", "2026-03-01T20:00:01+08:00")), (1, _share("d", "2026-03-01T12:00:02Z"))],
    }
    journal = journal_name("ev", 2)
    task = _task({PositionKey(journal, "sh", 0): 5, PositionKey(journal, "sh", 1): 1, PositionKey(journal, "ev", 2): 10})
    batch = task.batch([_message(9, b"old"), _message(10, b"e10"), _message(11, None)], feed)
    assert [src.text() for _, src in batch.items] == ["sh/0@5", "sh/1@1", "sh/0@7", "sh/0@6", "ev/2@10", "ev/2@11"]
    assert batch.items[-1][0] == b""  # a message without a value is fed as empty bytes (malformed_json)
    assert {t.application_name: t.notification_id for t in batch.trackings()} == {
        "kafka:ev:2|sh|0": 8, "kafka:ev:2|sh|1": 2, "kafka:ev:2|ev|2": 12}
    task.advance(batch)
    assert (task.events_next, task.shares_next(0), task.shares_next(1), task.shares_next(2)) == (12, 8, 2, 0)
    assert not task.batch([_message(11, b"again")], feed).items


def test_the_shares_buffer_keeps_what_some_task_still_needs():
    feed = SharesFeed(None, "sh", 100)
    feed.buffer = {0: [(o, b"x") for o in range(5)], 1: [(o, b"y") for o in range(3)]}
    feed.trim(lambda sp: {0: 3}.get(sp))  # no task needs partition 1: left alone
    assert [o for o, _ in feed.buffer[0]] == [3, 4] and len(feed.buffer[1]) == 3


# -------------------------------------------------------------- dead letters
def test_dead_letter_headers_say_why_and_where_from():
    letter = DeadLetter("schema_violation", "é" * 400, Source(topic="ev", partition=2, offset=7), b"{}")
    h = dict(headers(letter))
    assert h["reason"] == b"schema_violation" and h["detail"] == ("é" * 250).encode()
    assert (h["source.topic"], h["source.partition"], h["source.offset"]) == (b"ev", b"2", b"7")


def test_backoff_doubles_up_to_its_cap(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr("consumers.kafka.clients.time.sleep", slept.append)
    backoff = Backoff(0.5, 3.0)
    for _ in range(5):
        backoff.wait()
    assert slept == [0.5, 1.0, 2.0, 3.0, 3.0]
    with pytest.raises(ValueError):
        Backoff(0)


# ------------------------------------------------- reading fetched batches
def _batch(records, base_offset=0, compression=0, log_append_time=False) -> bytes:
    """One v2 record batch as the broker returns it: ``records`` are
    (offset delta, timestamp, key, value, headers)."""
    import struct

    from kafka.record.default_records import DefaultRecordBatchBuilder

    builder = DefaultRecordBatchBuilder(magic=2, compression_type=compression, is_transactional=0, producer_id=-1,
                                        producer_epoch=-1, base_sequence=-1, batch_size=1 << 30)
    for delta, ts, key, value, hdrs in records:
        builder.append(delta, timestamp=ts, key=key, value=value, headers=hdrs)
    buf = builder.build()
    struct.pack_into(">q", buf, 0, base_offset)
    if log_append_time:
        _set_attribute(buf, 0x08)
    return bytes(buf)


def _set_attribute(buf: bytearray, bit: int) -> None:
    """Set an attribute bit of a batch and recompute its CRC, as a broker would write it."""
    import struct

    from kafka.record.util import calc_crc32c

    attributes = struct.unpack_from(">h", buf, 21)[0] | bit
    struct.pack_into(">h", buf, 21, attributes)
    struct.pack_into(">I", buf, 17, calc_crc32c(memoryview(buf)[21:]))


def _readers(data: bytes, fetch_offset: int = 0, **kwargs):
    from kafka.consumer.fetcher import Fetcher
    from kafka.record.memory_records import MemoryRecords
    from kafka.structs import TopicPartition

    from consumers.kafka.fastrecords import FastPartitionRecords

    tp = TopicPartition("ev", 3)
    return (Fetcher.PartitionRecords(fetch_offset, tp, MemoryRecords(data), **kwargs),
            FastPartitionRecords(fetch_offset, tp, MemoryRecords(data), **kwargs))


def _varied_records(n: int, start_ts: int = 1_700_000_000_000) -> list:
    """Keys and values absent, empty, short and long (varints of 1 to 3
    bytes), headers now and then, timestamp deltas small and large."""
    out = []
    for i in range(n):
        key = None if i % 7 == 0 else (b"" if i % 11 == 0 else f"buyer-{i}".encode())
        value = None if i % 13 == 0 else (b"x" * (70_000 if i % 50 == 1 else 100 + i * 37 % 9000))
        hdrs = [("h", b"v"), ("empty", None)] if i % 17 == 0 else []
        out.append((i, start_ts + (i * i * 997) % 10_000_000, key, value, hdrs))
    return out


def test_the_fast_reader_reads_what_kafka_python_reads():
    data = _batch(_varied_records(400)) + _batch(_varied_records(300, 1_600_000_000_000), base_offset=400)
    data += _batch(_varied_records(20), base_offset=700, log_append_time=True)
    data += _batch(_varied_records(30), base_offset=720, compression=1)  # gzip: kafka-python's own reading
    original, fast = _readers(data)
    expected = original.take()
    assert len(expected) == 750 and fast.take() == expected
    assert fast.next_fetch_offset == original.next_fetch_offset == 750
    assert not fast and not original  # drained: the fetcher asks no more of them


def test_the_fast_reader_takes_in_pieces_from_the_middle_of_a_batch():
    data = _batch(_varied_records(100)) + _batch(_varied_records(100), base_offset=100)
    original, fast = _readers(data, fetch_offset=37)
    for n in (1, 10, 62, 5, 200):
        taken = fast.take(n)
        assert taken == original.take(n)
        assert fast.next_fetch_offset == original.next_fetch_offset
    assert taken[-1].offset == 199 and not fast and not original


def test_the_fast_reader_skips_control_batches_and_turns_corrupt_ones_into_one_unreadable_record():
    from consumers.kafka.fastrecords import UNREADABLE_HEADER

    control = bytearray(_batch([(0, 1, b"\x00\x00\x00\x00", b"\x00\x00\x00\x00\x00\x00", [])], base_offset=10))
    _set_attribute(control, 0x20)
    data = _batch(_varied_records(10)) + bytes(control) + _batch(_varied_records(5), base_offset=11)
    original, fast = _readers(data)
    assert [r.offset for r in fast.take()] == [r.offset for r in original.take()] == list(range(10)) + list(range(11, 16))

    # A bad CRC in the middle of a fetch: the batches around it are read, the
    # bad one is one record at its last offset holding its bytes, and the
    # reader goes on (kafka-python's own reader raises, forever, at offset 10).
    corrupt = bytearray(_batch(_varied_records(10), base_offset=10))
    corrupt[200] ^= 0xFF
    data = _batch(_varied_records(10)) + bytes(corrupt) + _batch(_varied_records(5), base_offset=20)
    fast = _readers(data)[1]
    taken = fast.take()
    assert [r.offset for r in taken] == list(range(10)) + [19] + list(range(20, 25))
    bad = taken[10]
    assert bad.value == bytes(corrupt) and bad.key is None
    assert dict(bad.headers)[UNREADABLE_HEADER].startswith(b"unreadable record batch, offsets 10-19: CorruptRecordError")
    assert fast.next_fetch_offset == 25 and not fast
    # Without CRC checks, a record whose length does not add up is unreadable too.
    truncated = bytearray(_batch(_varied_records(3)))
    truncated[61] = 0x7E  # the first record's length: 63, past what it holds
    taken = _readers(bytes(truncated), check_crcs=False)[1].take()
    assert [(r.offset, r.value) for r in taken] == [(2, bytes(truncated))]
    # Bytes that do not frame a batch at all: one offset at a time, never stuck.
    garbage = _batch(_varied_records(2)) + b"\x00" * 8 + b"\x00\x00\x00\x05" + b"\x01" * 30
    fast = _readers(garbage)[1]
    assert [r.offset for r in fast.take()] == [0, 1, 2] and fast.next_fetch_offset == 3


def test_a_corrupt_batch_claiming_more_offsets_than_it_has_ends_where_the_next_batch_begins():
    import struct

    corrupt = bytearray(_batch(_varied_records(1), base_offset=5))
    struct.pack_into(">i", corrupt, 23, 49)  # last offset delta: 49 (CRC now wrong), though it holds one record
    data = _batch(_varied_records(5)) + bytes(corrupt) + _batch(_varied_records(4), base_offset=6)
    fast = _readers(data)[1]
    assert [r.offset for r in fast.take()] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] and fast.next_fetch_offset == 10


def test_a_header_key_that_is_not_utf8_does_not_make_a_record_unreadable():
    data = bytearray(_batch([(0, 1, b"b1", b"{}", [("hk", b"v")])]))
    at = bytes(data).index(b"hk")
    data[at:at + 2] = b"\xff\xfe"
    fast = _readers(bytes(data), check_crcs=False)[1]
    [record] = fast.take()
    assert record.value == b"{}" and record.headers[0][0].encode("utf-8", "surrogateescape") == b"\xff\xfe"


@pytest.mark.parametrize("codec", [1, 2, 3, 4], ids=["gzip", "snappy", "lz4", "zstd"])
def test_compressed_batches_are_read_by_both_readers(codec):
    """Batches compressed by kafka-python's builder with the reference codec
    libraries (python-snappy, lz4, zstandard, gzip): kafka-python's reader and
    the fast one read the same records, headers included."""
    data = _batch(_varied_records(50), compression=codec) + _batch(_varied_records(40), base_offset=50, compression=codec)
    original, fast = _readers(data)
    expected = original.take()
    assert len(expected) == 90 and [r.offset for r in expected] == list(range(90))
    assert [r[:12] for r in fast.take()] == [r[:12] for r in expected]  # all but the header size kafka-python leaves out


@pytest.mark.parametrize("codec", [1, 2, 3, 4], ids=["gzip", "snappy", "lz4", "zstd"])
def test_a_compressed_batch_that_does_not_decompress_is_one_unreadable_record(codec):
    import struct

    from kafka.record.util import calc_crc32c

    good = bytearray(_batch(_varied_records(8), base_offset=0, compression=codec))
    bad = bytearray(good[:70]) + bytearray(b"\xa5" * 40)  # the compressed payload replaced by noise
    struct.pack_into(">q", bad, 0, 8)
    struct.pack_into(">i", bad, 8, len(bad) - 12)
    struct.pack_into(">I", bad, 17, calc_crc32c(memoryview(bad)[21:]))  # a valid CRC over the noise
    data = bytes(good) + bytes(bad) + _batch(_varied_records(3), base_offset=16)
    taken = _readers(data)[1].take()
    assert [r.offset for r in taken] == list(range(8)) + [15, 16, 17, 18]
    assert taken[8].value == bytes(bad)


def test_the_fast_reader_is_installed_on_one_consumer_not_on_the_library():
    from kafka import KafkaConsumer
    from kafka.consumer.fetcher import Fetcher

    from consumers.kafka.fastrecords import FastPartitionRecords, install

    consumer = KafkaConsumer(bootstrap_servers="127.0.0.1:1", api_version=(3, 9))  # not connected
    other = KafkaConsumer(bootstrap_servers="127.0.0.1:1", api_version=(3, 9))
    try:
        assert install(consumer) and install(consumer)
        assert consumer._fetcher.PartitionRecords is FastPartitionRecords
        assert other._fetcher.PartitionRecords is Fetcher.PartitionRecords is not FastPartitionRecords
    finally:
        consumer.close()
        other.close()
