"""Old clicks leave memory, and results never depend on it.

The engine moves clicks older than the attribution horizon to a spill file
and brings a buyer's clicks back before any decision that could need them.
These tests force spilling at every batch and compare every record, byte for
byte, with a ledger that keeps everything resident.
"""

from __future__ import annotations


from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.config import Rules
from ledger.limits import DEFAULT_LIMITS, Limits
from ledger.records import Source, encode_record
from tests.helpers import click, new_ledger, order, pending, raw, share
from tests.test_properties import deliveries, rules_strategy, streams

MINUTE_US = 60_000_000


def spilling(bucket_us: int = 15 * MINUTE_US) -> Limits:
    """Spill whatever is old at the end of every batch, with no slack."""
    return Limits(resident_clicks_max=0, late_slack_us=0, evict_bucket_us=bucket_us)


def _run(script, rules: Rules, batch_events: int, limits: Limits = DEFAULT_LIMITS):
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


# ------------------------------------------------------------ worked examples
def test_a_late_order_dated_among_spilled_clicks_brings_them_back():
    rules = Rules(model="last_click", window="1h")
    early = [share("s1", "p1", "2026-01-01T00:00:00Z"), share("s2", "p2", "2026-01-01T00:00:00Z"),
             click("b1", "s1", "2026-01-01T01:00:00Z", event_id="c-old")]
    later = [click("b2", "s2", f"2026-01-01T{h:02d}:00:00Z") for h in range(5, 10)]
    ledger = _run([("events", early), ("events", later)], rules, batch_events=2, limits=spilling())
    engine = ledger.engine
    # Watermark 09:00 − 1h window: clicks before 08:00 left memory (b1's and three of b2's).
    assert engine.clicks.spill.count == 4 and engine.clicks.buyers["b1"].clicks == []
    assert engine.clicks.buyers["b1"].spilled_until == (1_767_229_200_000_000, "c-old")
    ledger.ingest([(raw(order("o1", "b1", "2026-01-01T01:30:00Z", amount=10_000)), Source(file="t", line=99))])
    assert pending(ledger, "p1") == 1_500  # the spilled click won, 15% of 10,000
    assert engine.clicks.spill.count == 4  # brought back for the order, spilled again at the end of its batch


def test_customer_lock_keeps_the_last_binding_start_resident():
    """The binding started at 00:00 (4h lock) is active at 03:30 although its
    click was spilled: the last binding start stays, and the 02:00 click for
    p2 (inside the binding) neither starts nor renews one."""
    rules = Rules(model="customer_lock", attribution_lock_period="4h")
    events = [share("s1", "p1", "2026-01-01T00:00:00Z"), share("s2", "p2", "2026-01-01T00:00:00Z"),
              click("b1", "s1", "2026-01-01T00:00:00Z", event_id="c-bind"),
              click("b1", "s2", "2026-01-01T02:00:00Z", event_id="c-inside")]
    push = [click("b9", "s2", "2026-01-01T03:20:00Z")]
    ledger = _run([("events", events), ("events", push)], rules, batch_events=10, limits=spilling())
    b1 = ledger.engine.clicks.buyers["b1"]
    assert [c.event_id for c in b1.clicks] == ["c-bind"]  # c-inside spilled, the binding start kept
    assert ledger.engine.clicks.spill.count == 1
    ledger.ingest([(raw(order("o1", "b1", "2026-01-01T03:30:00Z", amount=10_000)), Source(file="t", line=99))])
    assert pending(ledger, "p1") == 1_500 and pending(ledger, "p2") == 0
    assert ledger.engine.clicks.spill.count == 1  # decided without bringing anything back


def test_a_late_click_before_the_boundary_is_decided_on_the_whole_history():
    rules = Rules(model="customer_lock", attribution_lock_period="2h")
    events = [share("s1", "p1", "2026-01-01T00:00:00Z"), share("s2", "p2", "2026-01-01T00:00:00Z"),
              click("b1", "s1", "2026-01-01T01:00:00Z"), click("b1", "s1", "2026-01-01T02:30:00Z"),
              click("b9", "s2", "2026-01-01T05:00:00Z"),
              order("o1", "b1", "2026-01-01T06:30:00Z", amount=10_000)]
    late = [click("b1", "s2", "2026-01-01T00:30:00Z"), click("b1", "s1", "2026-01-01T05:00:00Z")]
    spilled = _run([("events", events), ("events", late)], rules, batch_events=1, limits=spilling())
    resident = _run([("events", events), ("events", late)], rules, batch_events=1)
    assert _records(spilled) == _records(resident)
    # 00:30 binds p2 until 02:30; 02:30 starts p1's binding (until 04:30); 05:00 p1 again until 07:00.
    assert pending(spilled, "p1") == 1_500 and pending(spilled, "p2") == 0


def test_rules_with_a_new_lock_period_bring_spilled_clicks_back():
    first = Rules(model="customer_lock", attribution_lock_period="4h")
    second = Rules(model="customer_lock", attribution_lock_period="2h")
    events = [share("s1", "p1", "2026-01-01T00:00:00Z"), share("s2", "p2", "2026-01-01T00:00:00Z"),
              click("b1", "s1", "2026-01-01T00:00:00Z"), click("b1", "s2", "2026-01-01T02:00:00Z"),
              click("b9", "s2", "2026-01-01T05:00:00Z")]
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
def test_spilling_changes_no_record(data, events, rules, later_rules, bucket_min, batch):
    """Any arrival order, redeliveries, a settle and a rules change midway:
    the records are the same bytes whether old clicks were spilled or not."""
    order_ = data.draw(deliveries(events))
    cut = data.draw(st.integers(0, len(order_)))
    settle_at = data.draw(st.sampled_from(["2026-01-01T02:00:00Z", "2026-01-16T02:00:00Z"]))
    script = [("events", order_[:cut]), ("settle", settle_at), ("rules", later_rules), ("events", order_[cut:])]
    resident = _run(script, rules, batch)
    spilled = _run(script, rules, batch, limits=spilling(bucket_min * MINUTE_US))
    assert _records(spilled) == _records(resident)
    engine = spilled.engine
    assert engine.clicks.resident + engine.clicks.spill.count == sum(len(b.clicks) for b in resident.engine.clicks.buyers.values())

