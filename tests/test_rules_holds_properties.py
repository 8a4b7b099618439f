"""SPEC §14, §15 and §16 together as a property: every scope (any, merchant,
product) and both clocks (order, receipt, with fulfillments of both stages,
some naming the wrong buyer) under holds, releases and rejections of orders
and promoters and review (self_referral = "review", amount_over), interleaved
with the events in any arrival order with redeliveries, settles and payouts.
After every command its success (exit 0 or 2), and at the end every balance
(pending, payable, paid), equal a brute-force model (tests/oracle.py:
``RulesHoldsModel``, HoldsModel with oracle_order_pays' groups and
oracle_due's dueness); the relay's movements sum to the balances (SPEC §13);
the holds in force (review reasons included)
are the model's; audit replay re-executes the whole store."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ledger.books import Books
from ledger.config import Rules
from ledger.limits import DEFAULT_LIMITS, Limits
from ledger.records import Source
from ledger.replay import replay_journal
from ledger.store import JournalStore
from projections.audit import audit_replay
from tests.helpers import new_ledger
from tests.oracle import RulesHoldsModel
from tests.test_holds_properties import ORDER_IDS, _model, _nonzero, _relay_fold, _run, commands
from tests.test_scope_properties import streams


@st.composite
def rules_strategy(draw) -> Rules:
    scope = draw(st.sampled_from(["any", "merchant", "product"]))
    models = ["last_click", "first_click"] + ([] if scope == "product" else ["customer_lock"])
    return Rules(
        scope=scope, clock=draw(st.sampled_from(["order", "receipt"])),
        model=draw(st.sampled_from(models)), window=draw(st.sampled_from(["1h", "3h"])),
        attribution_lock_period=draw(st.sampled_from(["2h", "4h"])),
        self_referral=draw(st.sampled_from(["allow", "deny", "review", "review"])),
        level1_rate_bp=draw(st.sampled_from([1500, 2500])), level2_rate_bp=draw(st.sampled_from([0, 500, 1200])),
        order_cap_bp=draw(st.sampled_from([3000, 1500])), order_cap_amount_minor=draw(st.sampled_from([None, 400])),
        settlement_lock_period=draw(st.sampled_from(["1h", "3h"])),
        return_window=draw(st.sampled_from(["30m", "2h"])), auto_receive_after=draw(st.sampled_from(["1h", "4h"])),
        min_payout_minor=draw(st.sampled_from([0, 100])),
        review_amount_over_minor=draw(st.sampled_from([0, 0, 150, 600])),
    )


@st.composite
def scripts(draw) -> list:
    events = draw(streams(min_clicks=4, min_orders=2))  # dense: most examples attribute, settle and pay
    copies = events + (draw(st.lists(st.sampled_from(events), max_size=3)) if events else [])
    steps: list = [("event", e) for e in draw(st.permutations(copies))]
    for command in draw(st.lists(commands, min_size=1, max_size=14)):
        at = draw(st.integers(0, len(steps)))
        steps.insert(at, command)
        if command[0] in ("hold", "settle") and draw(st.booleans()):  # a release of what it may have held, later
            target = command[1:] if command[0] == "hold" else ("order", draw(st.sampled_from(ORDER_IDS)))
            steps.insert(draw(st.integers(at + 1, len(steps))), ("release", *target))
    return steps + [("settle", 600), ("payout", 600)]


def _check(steps: list, rules: Rules, limits: Limits = DEFAULT_LIMITS, batch_events: int | None = None) -> RulesHoldsModel:
    ledger = new_ledger(rules, limits=limits)
    books = Books(ledger.store.store, rules, limits)
    model = RulesHoldsModel(rules)
    batch: list[dict] = []
    for step in steps:
        if step[0] == "event":
            batch.append(step[1])
            model.add(step[1])
            continue
        if batch:
            lines = ((json.dumps(e).encode(), Source(file="t", line=i)) for i, e in enumerate(batch, 1))
            ledger.ingest(lines, batch_events=batch_events) if batch_events else ledger.ingest(lines)
            batch = []
        ok = _run(books, step)
        assert ok == _model(model, step), step
    held = sorted((h["kind"], h["id"], tuple(sorted(h["reasons"])) if h["kind"] == "review" else ())
                  for h in books.holds_in_force())
    assert held == model.in_force()
    live = _nonzero(books.balances())
    assert live == _nonzero(model.balances())
    assert _relay_fold(books.store) == live
    if limits is DEFAULT_LIMITS:
        report = audit_replay(books.store)
        assert report.ok, (report.failures, report.differences)
    else:  # audit replay re-executes under the default limits, whose state rows differ: replay under these
        for name in books.journals():
            replay = replay_journal(JournalStore(books.store, name), limits=limits, compare_state=True)
            assert replay.state_differences == []
    return model


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(steps=scripts(), rules=rules_strategy())
def test_scopes_clocks_holds_and_review_equal_the_model(steps, rules):
    model = _check(steps, rules)
    event(f"{rules.scope}/{rules.clock}")
    event(f"review holds placed: {bool(model.review or model.approved)}")
    event(f"settled then rejected: {bool(set(model.frozen) & model.rejected)}")
    event(f"paid: {bool(model.paid)}")


COLD = Limits(cache_bytes=0, late_slack_us=0, evict_bucket_us=30 * 60_000_000, cold_clicks_min=1)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(steps=scripts(), rules=rules_strategy())
def test_the_same_with_everything_cold_one_event_a_batch(steps, rules):
    """No cache, clicks moved to cold rows at every one-event batch: held,
    withdrawn and rejected orders' state survives the round trip through rows."""
    _check(steps, rules, COLD, batch_events=1)
