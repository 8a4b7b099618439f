"""Hostile messages on both topics never stop ``consume`` (issue 11, SPEC §9).

A realistic stream on ``commission-events`` and ``commission-shares`` with
hostile messages spliced into both — nesting 5 000 deep, lone surrogates in
ids, raw control characters, invalid UTF-8, NaN, tombstones (no value) and
lines over 1 MB — some of them the very first message of every shares
partition, so each task meets a poisoned share before any good one.
``commission-ledger consume`` must exit 0 with the books of a clean file
ingest of the clean lines, every hostile message a dead letter with its exact
bytes and source, and exactly one copy of each on the ``.dlq`` topic of the
topic it came from (the 1 MB+ ones too: the old producer, limited to 1 MiB,
could not send them).
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections import Counter

from consumers.kafka import ensure_topics
from devkit.synthetic import generate
from ledger.books import Books
from ledger.store import Store
from tests.test_dlq import _read_all, consume_watching_metrics, send_routed
from tests.test_kafka import EXE, _consumed, _nonzero, reference_balances

AT = "2026-01-15T02:00:00Z"
PARTITIONS = 4


def _share(**fields) -> dict:
    return {"type": "share", "event_id": "hx-s", "occurred_at": AT, "share_id": "hx-s", "promoter_id": "hx-p", **fields}


def _click(**fields) -> dict:
    return {"type": "click", "event_id": "hx-c", "occurred_at": AT, "buyer_id": "hx-b", "share_id": "sh0", **fields}


def _text(obj: dict) -> bytes:
    return json.dumps(obj).encode()  # escapes a lone surrogate as \\udXXX: valid JSON text, not I-JSON


def hostile_values(kind: str) -> list[bytes | None]:
    """Hostile messages, all ``malformed_json``, shaped like ``kind`` events."""
    base = _share if kind == "share" else _click
    id_field = "promoter_id" if kind == "share" else "buyer_id"
    return [
        b"[" * 5000 + b"]" * 5000,
        _text(base(event_id=f"hx-{kind}-\ud800")),
        _text(base(**{id_field: "hx-\udfff"})),
        _text(base(event_id=f"hx-{kind}-ctl", target="a\x01b")).replace(b"\\u0001", b"\x01"),
        _text(base(event_id=f"hx-{kind}-\xff")).replace("\\u00ff".encode(), b"\xff"),  # a lone 0xFF byte
        _text(base(event_id=f"hx-{kind}-nan", score=float("nan"))),
        None,  # a tombstone
        _text(base(event_id=f"hx-{kind}-big"))[:-1] + b', "note": "' + b"x" * 1_200_000,  # 1.2 MB, never closed
        _text(base(event_id=f"hx-{kind}-deep", meta=[[[1]]])).replace(b"[[[1]]]", b"[" * 3000 + b"]" * 3000),
    ]


def test_consume_of_both_topics_with_hostile_messages_spliced_in(tmp_path, kafka_bootstrap, topics):
    events_topic, shares_topic = topics
    clean = list(generate(3_000, seed=11))
    ensure_topics(kafka_bootstrap, {events_topic: PARTITIONS, shares_topic: PARTITIONS, f"{events_topic}.dlq": 1,
                                    f"{shares_topic}.dlq": 1})

    bad_shares = hostile_values("share")
    bad_events = hostile_values("click")
    assert all(b"\n" not in v for v in bad_shares + bad_events if v is not None)
    # Poisoned shares first in every shares partition; the rest spliced through the stream.
    stream: list = [(shares_topic, p, bad_shares[p]) for p in range(PARTITIONS)]
    spliced = [(shares_topic, i % PARTITIONS, v) for i, v in enumerate(bad_shares[PARTITIONS:])]
    spliced += [(events_topic, i % PARTITIONS, v) for i, v in enumerate(bad_events)]
    step = len(clean) // (len(spliced) + 1)
    for i, raw in enumerate(clean):
        if i and i % step == 0 and i // step <= len(spliced):
            stream.append(spliced[i // step - 1])
        stream.append(raw)
    hostile = [item for item in stream if isinstance(item, tuple)]
    assert len(hostile) == len(bad_shares) + len(bad_events)
    placed = send_routed(kafka_bootstrap, events_topic, shares_topic, stream)
    sources = {f"{m.topic}/{m.partition}@{m.offset}": (value or b"") for (_, _, value), m in zip(hostile, placed)}

    url = f"sqlite:///{tmp_path}/ledger.db"
    run = consume_watching_metrics(url, kafka_bootstrap, topics, tmp_path)
    out, text, samples = run.stdout, run.stderr, run.samples
    assert run.returncode == 0, text[-3000:]
    assert "Traceback" not in text and "given up" not in text, text[-3000:]

    # The books of a clean ingest, and every events message consumed: no partition stalled.
    assert _nonzero(Books(Store(url)).balances()) == reference_balances(clean)
    events_messages = sum(1 for raw in clean if b'"type":"share"' not in raw) + len(bad_events)
    assert _consumed(url, events_topic, PARTITIONS) == events_messages

    # Every hostile message a dead letter, with its exact bytes and its source;
    # a share in each task's journal (every task applies every share), an event in one.
    rows = json.loads(subprocess.run([EXE, "--store", url, "dead-letters", "--format", "json"],
                                     capture_output=True, check=True).stdout)
    by_source: dict[str, list] = {}
    for row in rows:
        by_source.setdefault(row["source"], []).append(row)
    for source, value in sources.items():
        found = by_source.get(source)
        assert found, f"no dead letter for {source}"
        assert {(r["reason"], base64.b64decode(r["raw_base64"])) for r in found} == {("malformed_json", value)}, source
        journals = {r["journal"] for r in found}
        assert len(journals) == (PARTITIONS if source.startswith(shares_topic) else 1), (source, journals)

    # One copy of each on the .dlq of its topic, its value the original bytes, its headers the source.
    copied = samples.get(("ledger_dlq_copies_sent_total", ()))
    assert copied is not None and copied >= len(sources), {k: v for k, v in samples.items() if k[0].startswith("ledger_dlq")}
    assert not any(k[0] == "ledger_dlq_send_failures_total" and v for k, v in samples.items())
    shares_copies = _read_all(kafka_bootstrap, f"{shares_topic}.dlq", len(bad_shares))
    copies = shares_copies + _read_all(kafka_bootstrap, f"{events_topic}.dlq", int(copied) - len(shares_copies))
    assert len(copies) == copied
    seen = Counter()
    for message in copies:
        h = dict(message.headers)
        source = f"{h['source.topic'].decode()}/{h['source.partition'].decode()}@{h['source.offset'].decode()}"
        assert message.topic == f"{h['source.topic'].decode()}.dlq", (message.topic, source)
        seen[source] += 1
        if source in sources:
            assert (message.value, h["reason"]) == (sources[source], b"malformed_json"), source
    assert all(seen[source] == 1 for source in sources), {s: seen[s] for s in sources}
    assert max(len(message.value) for message in copies) > 1_200_000
    assert f"dead_letters={len(rows)}" in out
