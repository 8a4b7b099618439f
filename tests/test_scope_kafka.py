"""SPEC §1's routing of fulfillments (issue 20) over the Kafka protocol (the
embedded Tansu broker): published to the events topic keyed by buyer_id, so
an order's fulfillments share its partition; consumed under the rules of
§14/§15, the books equal a file ingest of the same events."""

from __future__ import annotations

import json

from kafka import KafkaConsumer, TopicPartition

from consumers.kafka import LedgerConsumer, publish
from devkit.synthetic import DEMO_RULES, generate
from ledger.app import Ledger
from ledger.books import Books
from ledger.config import load_rules
from ledger.records import Source
from ledger.store import JournalStore, Store


def _nonzero(balances: dict) -> dict:
    return {k: tuple(v) for k, v in sorted(balances.items()) if any(v)}


def test_fulfillments_are_keyed_by_buyer_and_consumed_like_a_file(tmp_path, kafka_bootstrap, topics):
    rules = load_rules(DEMO_RULES)
    assert (rules.scope, rules.clock) == ("product", "receipt")
    lines = list(generate(2_000, seed=20, rules14=True))
    assert sum(b'"fulfillment"' in line for line in lines) > 300
    publish(lines, kafka_bootstrap, topic=topics[0], shares_topic=topics[1])

    reader = KafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(topics[0], p) for p in sorted(reader.partitions_for_topic(topics[0]))]
    reader.assign(partitions)
    reader.seek_to_beginning(*partitions)
    seen: dict[str, set[int]] = {}
    fulfillments = 0
    idle = 0
    while idle < 4:
        batches = reader.poll(timeout_ms=500)
        idle = 0 if batches else idle + 1
        for tp, records in batches.items():
            for r in records:
                try:
                    event = json.loads(r.value)
                except ValueError:
                    continue
                if not isinstance(event, dict) or not isinstance(event.get("buyer_id"), str):
                    continue
                assert r.key == event["buyer_id"].encode()
                seen.setdefault(event["buyer_id"], set()).add(tp.partition)
                fulfillments += event.get("type") == "fulfillment"
    reader.close()
    assert fulfillments > 300 and all(len(parts) == 1 for parts in seen.values())  # one buyer, one partition

    url = f"sqlite:///{tmp_path}/ledger.db"
    LedgerConsumer(Store(url), kafka_bootstrap, topic=topics[0], shares_topic=topics[1], rules=rules).run(until_idle_s=2.0)
    consumed = Books(Store(url), rules)
    consumed.settle("2026-03-01T00:00:00Z")

    reference = Store("memory://")
    ledger = Ledger(JournalStore(reference, "main"))
    ledger.adopt_rules(rules)
    ledger.ingest((raw, Source(file="ref", line=i)) for i, raw in enumerate(lines, 1))
    Books(reference, rules).settle("2026-03-01T00:00:00Z")
    expected = _nonzero(Books(reference).balances())
    assert _nonzero(consumed.balances()) == expected
    assert any(payable for _, payable, _ in expected.values()) and any(pending for pending, _, _ in expected.values())
