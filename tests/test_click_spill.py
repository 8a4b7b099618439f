"""Old clicks go cold, and results never depend on it.

When a buyer's row is written, clicks older than the attribution horizon move
to cold rows; a buyer's cold clicks come back before any decision that could
need them. These tests make clicks go cold at every batch (and the cache hold
nothing between batches) and compare every record, byte for byte, with a
ledger that keeps every click in the buyer's row.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.config import Rules
from ledger.engine.clicks import _decode_cold
from ledger.engine.spaces import COLD_CLICKS
from ledger.limits import Limits
from ledger.records import Source, encode_record
from ledger.replay import replay_journal
from tests.helpers import click, new_ledger, order, pending, raw, share
from tests.test_properties import deliveries, rules_strategy, streams

MINUTE_US = 60_000_000
RESIDENT = Limits(late_slack_us=10**15)  # nothing is ever old enough to go cold


def spilling(bucket_us: int = 15 * MINUTE_US) -> Limits:
    """Old clicks go cold at every batch, with no slack, and the cache keeps
    nothing once a batch is written: every decision reads the state tables."""
    return Limits(cache_bytes=0, late_slack_us=0, evict_bucket_us=bucket_us, cold_clicks_min=1)


def _run(script, rules: Rules, batch_events: int, limits: Limits = RESIDENT):
    """Run a script of ("events", [...]) / ("rules", Rules) / ("settle", TS) steps."""
    ledger = new_ledger(rules, limits=limits)
    line = 0
    for step, arg in script:
        if step == "events":
            items = []
            for e in arg:
                line += 1
                items.append((raw(e), Source(file="t", line=line)))
            ledger.ingest(items, batch_events=batch_events)
        elif step == "rules":
            ledger.adopt_rules(arg)
        else:
            ledger.settle(arg)
    return ledger


def _records(ledger) -> list[bytes]:
    return [encode_record(r) for _, r in ledger.records()]


def _row(ledger, buyer_id: str):
    return ledger.engine.clicks.buyers.get(buyer_id)


def _cold(ledger, buyer_id: str) -> list[str]:
    return [c.event_id for c in ledger.engine.clicks.cold_of(buyer_id)]


# ------------------------------------------------------------ worked examples
def test_a_late_order_dated_among_cold_clicks_brings_them_back():
    rules = Rules(model="last_click", window="1h")
    early = [share("s1", "p1", "2026-01-01T00:00:00Z"), share("s2", "p2", "2026-01-01T00:00:00Z"),
             click("b1", "s1", "2026-01-01T01:00:00Z", event_id="c-old")]
    later = [click("b1", "s2", "2026-01-01T09:00:00Z", event_id="c-new")]
    ledger = _run([("events", early), ("events", later)], rules, batch_events=2, limits=spilling())
    # Written at watermark 09:00 − 1h window: c-old went cold.
    assert [c.event_id for c in _row(ledger, "b1").clicks] == ["c-new"] and _cold(ledger, "b1") == ["c-old"]
    assert _row(ledger, "b1").spilled_until == (1_767_229_200_000_000, "c-old")
    ledger.ingest([(raw(order("o1", "b1", "2026-01-01T01:30:00Z", amount=10_000)), Source(file="t", line=99))])
    assert pending(ledger, "p1") == 1_500  # the cold click won, 15% of 10,000
    assert _cold(ledger, "b1") == ["c-old"]  # brought back for the order, cold again when the row was written


def test_a_late_order_reads_only_the_cold_rows_of_its_window():
    """A cold row spans one bucket and is keyed by its latest click: under a
    windowed model a late order reads the rows of its window (plus one bucket),
    never the buyer's history, and rewrites nothing."""
    rules = Rules(model="last_click", window="1h")
    net = [share("s1", "p1", "2026-01-01T00:00:00Z"), share("s2", "p2", "2026-01-01T00:00:00Z")]
    hours = [click("b1", "s1" if h < 5 else "s2", f"2026-01-01T{h:02d}:10:00Z", event_id=f"c{h}") for h in range(1, 8)]
    # One click per batch: each write moves what is older than watermark − 1h to cold rows.
    script = [("events", net)] + [("events", [c]) for c in hours] + [("events", [click("b1", "s2", "2026-01-01T12:00:00Z", event_id="c12")])]
    ledger = _run(script, rules, batch_events=1, limits=spilling())  # 15-minute buckets
    row = _row(ledger, "b1")
    assert [c.event_id for c in row.clicks] == ["c12"] and row.cold_rows == 7  # one row per click: each its own bucket
    read: list[list[str]] = []
    # The cold rows' reads, seen at the state reader (SortedSpace is a compiled
    # class: its methods cannot be replaced on an instance).
    reader = ledger.cache.reader
    scan = reader.scan
    def spy(journal, lo, hi, limit=None):
        rows = scan(journal, lo, hi, limit)
        if lo[:1] == bytes([COLD_CLICKS]):
            read.append([_decode_cold(v)[0].event_id for _, v in rows])
        return rows
    reader.scan = spy
    late = [(raw(order("o1", "b1", "2026-01-01T06:30:00Z", amount=10_000)), Source(file="t", line=99))]
    ledger.ingest(late)
    assert pending(ledger, "p2") == 1_500 and pending(ledger, "p1") == 0  # c6 (s2, 06:10) won
    assert read == [["c6"]]  # the window 05:30–06:30 plus a bucket: c6's row, not c1 … c5 or c7
    assert _row(ledger, "b1").cold_rows == 7 and _row(ledger, "b1").clicks == row.clicks  # nothing rewritten
    assert _cold(ledger, "b1") == ["c1", "c2", "c3", "c4", "c5", "c6", "c7"]
    resident = _run(script, rules, batch_events=1)
    resident.ingest(late)
    assert _records(ledger) == _records(resident)


def test_customer_lock_keeps_the_last_binding_start_in_the_row():
    """The binding started at 00:00 (4h lock) is active at 03:30 although the
    buyer's older clicks went cold: the last binding start stays in the row,
    and the clicks for p2 inside the binding neither start nor renew one."""
    rules = Rules(model="customer_lock", attribution_lock_period="4h")
    events = [share("s1", "p1", "2026-01-01T00:00:00Z"), share("s2", "p2", "2026-01-01T00:00:00Z"),
              click("b1", "s1", "2026-01-01T00:00:00Z", event_id="c-bind"),
              click("b1", "s2", "2026-01-01T02:00:00Z", event_id="c-inside")]
    push = [click("b1", "s2", "2026-01-01T03:20:00Z", event_id="c-push")]
    ledger = _run([("events", events), ("events", push)], rules, batch_events=10, limits=spilling())
    assert [c.event_id for c in _row(ledger, "b1").clicks] == ["c-bind", "c-push"]  # the binding start kept
    assert _cold(ledger, "b1") == ["c-inside"]
    ledger.ingest([(raw(order("o1", "b1", "2026-01-01T03:30:00Z", amount=10_000)), Source(file="t", line=99))])
    assert pending(ledger, "p1") == 1_500 and pending(ledger, "p2") == 0
    # Decided without bringing c-inside back; writing the row sent c-push cold too.
    assert _cold(ledger, "b1") == ["c-inside", "c-push"] and [c.event_id for c in _row(ledger, "b1").clicks] == ["c-bind"]


def test_a_late_click_before_the_boundary_is_decided_on_the_whole_history():
    rules = Rules(model="customer_lock", attribution_lock_period="2h")
    events = [share("s1", "p1", "2026-01-01T00:00:00Z"), share("s2", "p2", "2026-01-01T00:00:00Z"),
              click("b1", "s1", "2026-01-01T01:00:00Z"), click("b1", "s1", "2026-01-01T02:30:00Z"),
              click("b1", "s2", "2026-01-01T05:00:00Z"),
              order("o1", "b1", "2026-01-01T06:30:00Z", amount=10_000)]
    late = [click("b1", "s2", "2026-01-01T00:30:00Z"), click("b1", "s1", "2026-01-01T05:10:00Z")]
    spilled = _run([("events", events), ("events", late)], rules, batch_events=1, limits=spilling())
    resident = _run([("events", events), ("events", late)], rules, batch_events=1)
    assert _records(spilled) == _records(resident)
    # 00:30 binds p2 until 02:30; 02:30 starts p1's binding (until 04:30); 05:00 p2 until 07:00.
    assert pending(spilled, "p2") == 1_500 and pending(spilled, "p1") == 0


def test_rules_with_a_new_lock_period_bring_cold_clicks_back():
    first = Rules(model="customer_lock", attribution_lock_period="4h")
    second = Rules(model="customer_lock", attribution_lock_period="2h")
    events = [share("s1", "p1", "2026-01-01T00:00:00Z"), share("s2", "p2", "2026-01-01T00:00:00Z"),
              click("b1", "s1", "2026-01-01T00:00:00Z"), click("b1", "s2", "2026-01-01T02:00:00Z"),
              click("b1", "s2", "2026-01-01T05:00:00Z", event_id="c-late")]
    script = [("events", events), ("rules", second),
              ("events", [order("o1", "b1", "2026-01-01T03:00:00Z", amount=10_000)])]
    spilled = _run(script, first, batch_events=10, limits=spilling())
    # Under a 2h lock the 02:00 click starts p2's binding: only the whole history says so.
    assert pending(spilled, "p2") == 1_500 and pending(spilled, "p1") == 0
    assert _records(spilled) == _records(_run(script, first, batch_events=10))


# ------------------------------------------------------------------ property
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), events=streams(), rules=rules_strategy, later_rules=rules_strategy,
       bucket_min=st.sampled_from([1, 15, 60]), batch=st.integers(1, 4))
def test_cold_clicks_and_an_empty_cache_change_no_record(data, events, rules, later_rules, bucket_min, batch):
    """Any arrival order, redeliveries, a settle and a rules change midway:
    the records are the same bytes whether old clicks went cold and the cache
    kept nothing, or every click stayed in its row; and each ledger's state
    tables are exactly what a re-execution of its journal produces."""
    order_ = data.draw(deliveries(events))
    cut = data.draw(st.integers(0, len(order_)))
    settle_at = data.draw(st.sampled_from(["2026-01-01T02:00:00Z", "2026-01-16T02:00:00Z"]))
    script = [("events", order_[:cut]), ("settle", settle_at), ("rules", later_rules), ("events", order_[cut:])]
    resident = _run(script, rules, batch)
    limits = spilling(bucket_min * MINUTE_US)
    spilled = _run(script, rules, batch, limits=limits)
    assert _records(spilled) == _records(resident)
    for ledger, used in ((resident, RESIDENT), (spilled, limits)):
        assert replay_journal(ledger.store, limits=used, in_memory=True, compare_state=True).state_differences == []
