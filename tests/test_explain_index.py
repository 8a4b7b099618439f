"""Explanations read the live state tables (no replay): the same as the
writer's own engine explains, for orders of a realistic stream."""

from __future__ import annotations

import random

from devkit.synthetic import generate
from ledger.config import Rules
from ledger.limits import Limits
from ledger.records import Source
from ledger.store import Store
from projections.explain import Explainer, explain
from schemas.decode import Decoded, decode_event
from schemas.events import Order
from tests.helpers import new_ledger


def test_the_explainer_reads_the_state_tables_as_the_writer_sees_them(tmp_path):
    """Late events, refunds, rejected refunds, several segments, a cache that
    keeps nothing: a fresh read-only view explains each sampled order exactly
    as the writer's engine does."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    lines = list(generate(4_000, seed=3))
    ledger = new_ledger(Rules(), url, limits=Limits(cache_bytes=0))
    ledger.ingest(((line, Source(file="t", line=i)) for i, line in enumerate(lines, 1)), batch_events=97)
    orders = sorted({d.event.order_id for d in map(decode_event, lines) if isinstance(d, Decoded) and isinstance(d.event, Order)})
    refunded = [o for o in orders if (state := ledger.engine.orders.get(o)) is not None and state.refunds]
    assert refunded
    explainer = Explainer(Store(url))
    for order_id in random.Random(1).sample(orders, 40) + refunded[:10]:
        assert explainer.explain(order_id) == {"journal": "main", **explain(ledger.engine, ledger.records(), order_id)}
    assert explainer.explain("no-such-order") is None
