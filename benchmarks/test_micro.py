"""Micro-benchmarks of the hot paths (pytest-benchmark).

    pytest benchmarks/ --benchmark-only

Each benchmark works on a batch from the seeded synthetic stream, so numbers
are per batch of BATCH events; divide to get per-event cost.
"""

from __future__ import annotations

import pytest

from devkit.synthetic import generate
from ledger.attribution import ClickRef, last_click, lock_binding
from ledger.commission import order_totals
from ledger.config import Rules
from ledger.engine import memory_engine
from ledger.records import Segment, Source, encode_segment
from ledger.store import JournalStore, Store
from projections.balances import fold_records
from schemas.decode import Decoded, _decode_careful, decode_event, fingerprint
from schemas.timestamps import _parse_careful, parse_timestamp_us

BATCH = 5_000


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    return list(generate(BATCH, seed=42))


def test_decode_batch(benchmark, lines):
    """The typed fast path (issue 13); no fingerprint."""
    results = benchmark(lambda: [decode_event(raw) for raw in lines])
    assert len(results) == len(lines)


def test_decode_batch_careful_path(benchmark, lines):
    """The reference path every event took before issue 13 (less the fingerprint)."""
    results = benchmark(lambda: [_decode_careful(raw) for raw in lines])
    assert len(results) == len(lines)


def test_fingerprint_batch(benchmark, lines):
    """The content fingerprint, now computed only when an event id comes again."""
    valid = [raw for raw in lines if isinstance(decode_event(raw), Decoded)]
    digests = benchmark(lambda: [fingerprint(raw) for raw in valid])
    assert len(digests) == len(valid)


@pytest.mark.parametrize("parse", [parse_timestamp_us, _parse_careful], ids=["sliced", "pattern"])
def test_timestamp_batch(benchmark, lines, parse):
    texts = [d.event.occurred_at for d in map(decode_event, lines) if isinstance(d, Decoded)]
    instants = benchmark(lambda: [parse(text) for text in texts])
    assert None not in instants


def test_attribution_against_many_clicks(benchmark):
    clicks = [ClickRef(i * 60_000_000, f"c{i:06d}", f"s{i % 50}") for i in range(10_000)]
    order_us = 5_000 * 60_000_000
    window_us = 7 * 86_400_000_000

    def run():
        return last_click(clicks, order_us, window_us), lock_binding(clicks, order_us, 30 * 86_400_000_000)

    winner, binding = benchmark(run)
    assert winner is not None and winner.event_id == "c005000" and binding is not None


def test_commission_arithmetic(benchmark, lines):
    from schemas.events import Order

    orders = [d.event for d in map(decode_event, lines) if hasattr(d, "event") and isinstance(d.event, Order)]
    rates = (1500, 500, 2000, 1000)
    totals = benchmark(lambda: [order_totals(o.lines, rates, 3000, None) for o in orders])
    assert len(totals) == len(orders) and all(c >= l1 + l2 for c, l1, l2, _ in totals)


def test_apply_batch_to_engine(benchmark, lines):
    source = Source(file="bench", line=0)

    def run():
        engine = memory_engine()
        engine.adopt_rules(Rules())
        return [engine.ingest(raw, source) for raw in lines]

    outcomes = benchmark(run)
    assert len(outcomes) == len(lines)


def test_store_batch_sqlite(benchmark, lines, tmp_path):
    engine = memory_engine()
    engine.adopt_rules(Rules())
    from ledger.outcomes import record_for

    source = Source(file="bench", line=0)
    records = [record_for(engine.ingest(raw, source), raw, source, decode_event(raw)) for raw in lines]
    journal = JournalStore(Store(f"sqlite:///{tmp_path}/bench.db"), "bench")
    version = [0]

    def run():
        state = encode_segment(Segment(version[0] * len(records) + 1, records))
        version[0] = journal.append([("commission_ledger.Segment", state)], version[0])

    benchmark(run)
    assert version[0] >= 1


def test_payout_projection(benchmark, lines):
    engine = memory_engine()
    engine.adopt_rules(Rules())
    from ledger.outcomes import record_for

    source = Source(file="bench", line=0)
    records = [record_for(engine.ingest(raw, source), raw, source, decode_event(raw)) for raw in lines]
    balances = benchmark(lambda: fold_records(records))
    pending: dict[tuple[str, str], int] = {}  # an independent fold of one bucket
    for record in records:
        for t in getattr(record, "transfers", []):
            sign = (t.credit == "pending") - (t.debit == "pending")
            pending[(t.promoter_id, t.currency)] = pending.get((t.promoter_id, t.currency), 0) + sign * t.amount_minor
    assert {k: v[0] for k, v in balances.items()} == pending
