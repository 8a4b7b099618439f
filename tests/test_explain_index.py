"""Explanations read only the segments that mention the order (OrderSegments)."""

from __future__ import annotations

import random

from devkit.synthetic import generate
from ledger.config import Rules
from ledger.records import Source
from ledger.store import Store
from projections.explain import Explainer, explain
from tests.helpers import new_ledger

def test_explainer_reads_only_the_segments_that_mention_the_order(tmp_path):
    """For sampled orders of a realistic stream (late events, refunds, rejected
    refunds, several segments), the indexed explanation equals the one built
    from a scan of the whole journal."""
    url = f"sqlite:///{tmp_path}/ledger.db"
    ledger = new_ledger(Rules(), url)
    ledger.ingest(((line, Source(file="t", line=i)) for i, line in enumerate(generate(4_000, seed=3), 1)), batch_events=97)
    explainer = Explainer(Store(url))
    known = ledger.engine.orders.orders
    orders = sorted(known)
    sample = random.Random(1).sample(orders, 40) + [o for o in orders if known[o].refunds][:10]
    for order_id in sample:
        assert explainer.explain(order_id) == {"journal": "main", **explain(ledger.engine, ledger.records(), order_id)}
    assert explainer.explain("no-such-order") is None
