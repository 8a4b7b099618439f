"""SPEC §16 as a property: holds, releases and rejections of orders and
promoters interleaved with events (in any arrival order, with redeliveries),
settles and payouts. After every command its success (exit 0 or 2) and at the
end every balance equal a brute-force model (tests/oracle.py: HoldsModel);
the relay's movements sum to the balances (SPEC §13); audit replay re-executes
the whole store."""

from __future__ import annotations

import json
from collections import defaultdict

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from consumers.relay import store_events
from ledger.books import Books
from ledger.config import Rules
from ledger.errors import ConflictError, NotFoundError
from projections.audit import audit_replay
from schemas import outbound
from tests.helpers import feed, new_ledger
from tests.oracle import HoldsModel
from tests.test_properties import PROMOTERS, streams

START_US = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z

rules_strategy = st.builds(
    Rules,
    model=st.sampled_from(["last_click", "first_click", "customer_lock"]),
    window=st.sampled_from(["1h", "3h"]),
    attribution_lock_period=st.sampled_from(["2h", "4h"]),
    self_referral=st.sampled_from(["allow", "deny", "review", "review"]),
    level2_rate_bp=st.sampled_from([0, 500, 1200]),
    order_cap_amount_minor=st.sampled_from([None, 400]),
    settlement_lock_period=st.sampled_from(["1h", "3h"]),
    min_payout_minor=st.sampled_from([0, 100]),
    review_amount_over_minor=st.sampled_from([0, 0, 150, 600]),
)

ORDER_IDS = [f"o{i}" for i in range(6)] + ["ghost"]
commands = st.one_of(
    st.tuples(st.just("settle"), st.integers(0, 600)),
    st.tuples(st.just("payout"), st.integers(0, 600)),
    st.tuples(st.just("hold"), st.just("order"), st.sampled_from(ORDER_IDS)),
    st.tuples(st.just("release"), st.just("order"), st.sampled_from(ORDER_IDS)),
    st.tuples(st.just("reject"), st.sampled_from(ORDER_IDS)),
    st.tuples(st.just("hold"), st.just("promoter"), st.sampled_from(PROMOTERS)),
    st.tuples(st.just("release"), st.just("promoter"), st.sampled_from(PROMOTERS)),
)


@st.composite
def scripts(draw):
    events = draw(streams())
    copies = events + (draw(st.lists(st.sampled_from(events), max_size=3)) if events else [])
    delivered = list(draw(st.permutations(copies)))
    steps: list = [("event", e) for e in delivered]
    for command in draw(st.lists(commands, min_size=1, max_size=14)):
        at = draw(st.integers(0, len(steps)))
        steps.insert(at, command)
        if command[0] in ("hold", "settle") and draw(st.booleans()):  # a release of what it may have held, later
            target = command[1:] if command[0] == "hold" else ("order", draw(st.sampled_from(ORDER_IDS)))
            steps.insert(draw(st.integers(at + 1, len(steps))), ("release", *target))
    return steps + [("settle", 600), ("payout", 600)]


def _timestamp(minute: int) -> str:
    from schemas.timestamps import format_timestamp_us

    return format_timestamp_us(START_US + minute * 60_000_000)


def _run(books: Books, step) -> bool:
    """One command on the ledger: whether it succeeded (exit 0)."""
    try:
        if step[0] == "settle":
            books.settle(_timestamp(step[1]))
        elif step[0] == "payout":
            books.payout(_timestamp(step[1]))
        elif step[0] == "hold":
            books.hold(step[1], step[2], "doubt", "finance")
        elif step[0] == "release":
            books.release(step[1], step[2], "checked", "finance")
        else:
            books.reject(step[1], "fraud", "finance")
    except (ConflictError, NotFoundError):
        return False
    return True


def _model(model: HoldsModel, step) -> bool:
    if step[0] == "settle":
        model.settle(START_US + step[1] * 60_000_000)
        return True
    if step[0] == "payout":
        model.payout()
        return True
    if step[0] == "hold":
        return model.hold(step[1], step[2])
    if step[0] == "release":
        return model.release(step[1], step[2])
    return model.reject(step[1])


def _nonzero(balances) -> dict:
    return {k: list(v) for k, v in balances.items() if any(v)}


def _relay_fold(store) -> dict:
    index = {"pending": 0, "payable": 1, "paid": 2}
    out: dict = defaultdict(lambda: [0, 0, 0])
    for e in store_events(store):
        v = json.loads(outbound.encode(e))
        row = out[(v["promoter_id"], v["currency"])]
        if v["from"] in index:
            row[index[v["from"]]] -= v["amount_minor"]
        if v["to"] in index:
            row[index[v["to"]]] += v["amount_minor"]
    return _nonzero(out)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(steps=scripts(), rules=rules_strategy)
def test_holds_releases_rejections_settles_and_payouts_equal_the_model(steps, rules):
    ledger = new_ledger(rules)
    books = Books(ledger.store.store, rules)
    model = HoldsModel(rules)
    pending_events: list[dict] = []
    for step in steps:
        if step[0] == "event":
            pending_events.append(step[1])
            model.add(step[1])
            continue
        if pending_events:
            feed(ledger, pending_events)
            pending_events = []
        ok = _run(books, step)
        assert ok == _model(model, step), step
        event(f"{step[0]} {step[1] if step[0] in ('hold', 'release') else ''} {'ok' if ok else 'refused'}")
    event(f"review holds placed: {bool(model.review or model.approved)}")
    event(f"settled then rejected: {bool(set(model.frozen) & model.rejected)}")
    event(f"paid: {bool(model.paid)}")
    live = _nonzero(books.balances())
    assert live == _nonzero(model.balances())
    assert _relay_fold(books.store) == live
    report = audit_replay(books.store)
    assert report.ok, (report.failures, report.differences)
