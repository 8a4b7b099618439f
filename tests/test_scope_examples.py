"""Worked examples, exact amounts, for every sentence of SPEC §14 (what a share
can earn on) and §15 (fulfillment and the receipt clock). Issue 20.

Default rates: level 1 1500 bp, level 2 500 bp, order cap 3000 bp.
"""

from __future__ import annotations

from ledger.config import Rules
from tests.helpers import balances, click, dead_reasons, feed, new_ledger, order, refund, share


def t(day: int, hour: int = 0) -> str:
    return f"2026-01-{day:02d}T{hour:02d}:00:00Z"


TEA_CUP = [{"sku": "tea-500g", "product_id": "tea", "quantity": 1, "unit_price": 10_000},
           {"sku": "cup", "quantity": 1, "unit_price": 5_000}]  # product id: the sku


def owed(ledger) -> dict[str, tuple[int, int]]:
    """promoter → (pending, payable), CNY, non-zero rows."""
    return {p: (v[0], v[1]) for (p, c), v in balances(ledger).items() if (v[0], v[1]) != (0, 0)}


def fulfillment(event_id: str, order_id: str, buyer_id: str, stage: str, at: str) -> dict:
    return {"type": "fulfillment", "event_id": event_id, "occurred_at": at, "order_id": order_id,
            "buyer_id": buyer_id, "stage": stage}


# Three shares: p1's shows tea of m1, p2's is of shop m2, p3's names nothing.
SHARES = [share("s1", "p1", t(1), merchant_id="m1", product_id="tea"), share("s2", "p2", t(1), merchant_id="m2"),
          share("s3", "p3", t(1))]
CLICKS = [click("b1", "s3", t(1, 1), event_id="c3"), click("b1", "s1", t(1, 2), event_id="c1"),
          click("b1", "s2", t(1, 3), event_id="c2")]


def run(rules: Rules, events: list) -> dict[str, tuple[int, int]]:
    ledger = new_ledger(rules)
    feed(ledger, events)
    return owed(ledger)


# ------------------------------------------------------------------ §14 coverage
def test_scope_any_any_click_wins_any_order():
    # the last click (p2's share of shop m2) wins m1's whole order: 15000 × 15% = 2250
    assert run(Rules(), SHARES + CLICKS + [order("o1", "b1", t(1, 4), TEA_CUP)]) == {"p2": (2250, 0)}


def test_scope_merchant_a_share_of_another_shop_covers_nothing():
    # s2 names m2: not a candidate for m1's order; the last covering click is p1's (m1): 2250
    assert run(Rules(scope="merchant"), SHARES + CLICKS + [order("o1", "b1", t(1, 4), TEA_CUP)]) == {"p1": (2250, 0)}
    # a share that names no merchant covers every shop: p3's click alone wins m2's order
    assert run(Rules(scope="merchant"), SHARES + CLICKS[:1] + [order("o1", "b1", t(1, 4), TEA_CUP, merchant_id="m2")]) == {
        "p3": (2250, 0)}


def test_scope_product_a_winner_per_line_and_a_line_without_one_earns_nothing():
    # tea: p1's share names tea (same product): 10000 × 15% = 1500;
    # cup: p1's share names tea, not cup; p2's is another shop's; p3's names nothing: 5000 × 15% = 750
    assert run(Rules(scope="product"), SHARES + CLICKS + [order("o1", "b1", t(1, 4), TEA_CUP)]) == {
        "p1": (1500, 0), "p3": (750, 0)}
    # without p3's click the cup line has no winner and earns nothing
    assert run(Rules(scope="product"), SHARES + CLICKS[1:] + [order("o1", "b1", t(1, 4), TEA_CUP)]) == {"p1": (1500, 0)}
    # a line's product id is its sku when absent: a share naming "cup" covers it
    events = [share("s4", "p4", t(1), product_id="cup"), click("b1", "s4", t(1, 1))]
    assert run(Rules(scope="product"), events + [order("o1", "b1", t(1, 4), TEA_CUP)]) == {"p4": (750, 0)}


def test_coverage_filters_before_the_model():
    # last_click: the later click (p2, shop m2) does not take the order from p1's earlier covering click
    events = SHARES[:2] + [click("b1", "s1", t(1, 1)), click("b1", "s2", t(1, 2)),
                           order("o1", "b1", t(1, 3), amount=10_000)]
    assert run(Rules(scope="merchant"), events) == {"p1": (1500, 0)}
    # first_click: the earlier click (p2, shop m2) does not cover; p1's later one wins
    events = SHARES[:2] + [click("b1", "s2", t(1, 1)), click("b1", "s1", t(1, 2)),
                           order("o1", "b1", t(1, 3), amount=10_000)]
    assert run(Rules(scope="merchant", model="first_click"), events) == {"p1": (1500, 0)}


def test_customer_lock_with_merchant_scope_binds_per_buyer_and_merchant():
    events = SHARES[:2] + [click("b1", "s1", t(1, 1)), click("b1", "s2", t(1, 2)),
                           order("o1", "b1", t(1, 3), amount=10_000), order("o2", "b1", t(1, 3), amount=20_000, merchant_id="m2")]
    # any: the first click binds the buyer for 30 days, both orders go to p1: 1500 + 3000
    assert run(Rules(model="customer_lock"), events) == {"p1": (4500, 0)}
    # merchant: m1's history starts with p1's click, m2's with p2's (p1's share does not cover m2)
    assert run(Rules(model="customer_lock", scope="merchant"), events) == {"p1": (1500, 0), "p2": (3000, 0)}
    # a share naming no merchant is in every merchant's history: p3's earlier click binds both
    assert run(Rules(model="customer_lock", scope="merchant"), SHARES + [click("b1", "s3", t(1))] + events[2:]) == {
        "p3": (4500, 0)}


def test_a_late_click_re_evaluates_only_the_line_it_covers():
    ledger = new_ledger(Rules(scope="product"))
    feed(ledger, SHARES + [click("b1", "s3", t(1, 1)), order("o1", "b1", t(1, 4), TEA_CUP)])
    assert owed(ledger) == {"p3": (2250, 0)}  # p3 wins both lines, one group
    feed(ledger, [click("b1", "s1", t(1, 2))])  # late, dated before the order: takes tea only
    assert owed(ledger) == {"p1": (1500, 0), "p3": (750, 0)}


def test_a_late_share_re_evaluates_through_its_parked_click():
    ledger = new_ledger(Rules(scope="product"))
    feed(ledger, SHARES[2:] + [click("b1", "s3", t(1, 1)), click("b1", "s1", t(1, 2)), order("o1", "b1", t(1, 4), TEA_CUP)])
    assert owed(ledger) == {"p3": (2250, 0)}
    feed(ledger, SHARES[:1])
    assert owed(ledger) == {"p1": (1500, 0), "p3": (750, 0)}


# ------------------------------------------------------------ §14 commission groups
def test_each_group_has_its_own_cap():
    # cap 400 per group: tea group min(1500, 400), cup group min(750, 400); one order cap would have paid 400
    rules = Rules(scope="product", order_cap_amount_minor=400)
    assert run(rules, SHARES + CLICKS + [order("o1", "b1", t(1, 4), TEA_CUP)]) == {"p1": (400, 0), "p3": (400, 0)}
    # the bp cap is per group too: K_g = floor(C_g × 1000 / 10000) → tea 1000, cup 500
    rules = Rules(scope="product", order_cap_bp=1000)
    assert run(rules, SHARES + CLICKS + [order("o1", "b1", t(1, 4), TEA_CUP)]) == {"p1": (1000, 0), "p3": (500, 0)}


def test_each_group_has_its_own_upline_and_rates():
    # q is p1's upline (p1's share re-shared from q's, dated before the order); p3 has none
    events = [share("sq", "q", t(1)), share("s1", "p1", t(1, 0), parent="sq", merchant_id="m1", product_id="tea")] + \
        SHARES[1:] + CLICKS
    lines = [dict(TEA_CUP[0], level1_rate_bp=1000), TEA_CUP[1]]  # tea at 10%: 1000; its L2 500
    assert run(Rules(scope="product"), events + [order("o1", "b1", t(1, 4), lines)]) == {
        "p1": (1000, 0), "q": (500, 0), "p3": (750, 0)}


def test_self_referral_is_per_group():
    # the buyer is p3: under deny, p3's group (cup) pays nothing; p1's group (tea) pays as usual
    events = SHARES + [click("p3", "s3", t(1, 1)), click("p3", "s1", t(1, 2)), order("o1", "p3", t(1, 4), TEA_CUP)]
    assert run(Rules(scope="product", self_referral="deny"), events) == {"p1": (1500, 0)}
    assert run(Rules(scope="product"), events) == {"p1": (1500, 0), "p3": (750, 0)}


def test_refunds_stay_order_level_with_floors_per_group_and_level():
    # p1 and p3 both have upline q: q is level 2 of both groups (tea 500, cup 250)
    events = [share("sq", "q", t(1)), share("s1", "p1", t(1), parent="sq", merchant_id="m1", product_id="tea"),
              share("s3", "p3", t(1), parent="sq"), click("b1", "s3", t(1, 1)), click("b1", "s1", t(1, 2)),
              order("o1", "b1", t(1, 4), TEA_CUP)]
    assert run(Rules(scope="product"), events) == {"p1": (1500, 0), "p3": (750, 0), "q": (750, 0)}
    # R = 1 of C = 15000: floor(1500 × 14999 / 15000) = 1499, floor(750 × …) = 749,
    # q: floor(500 × …) + floor(250 × …) = 499 + 249 = 748 (one floor of 750 would give 749)
    assert run(Rules(scope="product"), events + [refund("r1", "o1", "b1", 1)]) == {"p1": (1499, 0), "p3": (749, 0), "q": (748, 0)}
    # refunding the cup (5000) does not take the cup group's commission: it is order-level
    assert run(Rules(scope="product"), events + [refund("r1", "o1", "b1", 5000)]) == {"p1": (1000, 0), "p3": (500, 0), "q": (499, 0)}


def test_groups_settle_and_claw_back():
    ledger = new_ledger(Rules(scope="product"))
    feed(ledger, SHARES + CLICKS + [order("o1", "b1", t(1, 4), TEA_CUP)])
    ledger.settle(t(16, 4))  # 15 days after the order
    assert owed(ledger) == {"p1": (0, 1500), "p3": (0, 750)}
    feed(ledger, [refund("r1", "o1", "b1", 7500)])
    assert owed(ledger) == {"p1": (0, 750), "p3": (0, 375)}
    feed(ledger, [click("b1", "s3", t(1, 3))])  # late: the settled order is frozen
    assert owed(ledger) == {"p1": (0, 750), "p3": (0, 375)}


# ------------------------------------------------------------------ §15 receipt clock
RECEIPT = Rules(clock="receipt")  # return_window 7d, auto_receive_after 10d
BASE = [share("s1", "p1", t(1)), click("b1", "s1", t(1)), order("o1", "b1", t(1, 0), amount=10_000)]


def settled_at(rules: Rules, events: list, as_of: str) -> dict[str, tuple[int, int]]:
    ledger = new_ledger(rules)
    feed(ledger, events)
    ledger.settle(as_of)
    return owed(ledger)


def test_shipped_counts_as_received_after_auto_receive_after():
    events = BASE + [fulfillment("f1", "o1", "b1", "shipped", t(2))]
    # r = Jan 2 + 10d = Jan 12; due Jan 12 + 7d = Jan 19 (both ends: ≤ T)
    assert settled_at(RECEIPT, events, "2026-01-18T23:59:59.999999Z") == {"p1": (1500, 0)}
    assert settled_at(RECEIPT, events, t(19)) == {"p1": (0, 1500)}


def test_received_is_the_earliest_term():
    events = BASE + [fulfillment("f1", "o1", "b1", "shipped", t(2)), fulfillment("f2", "o1", "b1", "received", t(5)),
                     fulfillment("f3", "o1", "b1", "received", t(3))]  # the earliest received counts: Jan 3
    assert settled_at(RECEIPT, events, "2026-01-09T23:59:59Z") == {"p1": (1500, 0)}
    assert settled_at(RECEIPT, events, t(10)) == {"p1": (0, 1500)}
    # two shipped: the earliest counts (Jan 2 → r Jan 12, due Jan 19)
    events = BASE + [fulfillment("f1", "o1", "b1", "shipped", t(4)), fulfillment("f2", "o1", "b1", "shipped", t(2))]
    assert settled_at(RECEIPT, events, t(19)) == {"p1": (0, 1500)}


def test_a_receipt_dated_before_the_order_counts_from_the_order():
    events = BASE + [fulfillment("f1", "o1", "b1", "received", "2025-12-30T00:00:00Z")]
    assert settled_at(RECEIPT, events, "2026-01-07T23:59:59Z") == {"p1": (1500, 0)}
    assert settled_at(RECEIPT, events, t(8)) == {"p1": (0, 1500)}  # max(O, r) + 7d


def test_never_shipped_stays_pending_whatever_its_age():
    ledger = new_ledger(RECEIPT)
    feed(ledger, BASE + [order("o2", "b1", t(1, 1), amount=100)])
    ledger.settle("2027-01-01T00:00:00Z")
    assert owed(ledger) == {"p1": (1515, 0)}
    assert ledger.engine.awaiting_receipt() == 2  # the metric
    feed(ledger, [fulfillment("f1", "o1", "b1", "shipped", t(2))])
    assert ledger.engine.awaiting_receipt() == 2  # shipped, not received
    feed(ledger, [fulfillment("f2", "o1", "b1", "received", t(3))])
    assert ledger.engine.awaiting_receipt() == 1
    ledger.settle("2027-01-01T00:00:00Z")
    assert owed(ledger) == {"p1": (15, 1500)}


def test_fully_refunded_orders_settle_without_receipt():
    # R = C: due at O + return_window (7d), shipped or not (it pays 0 by then)
    events = BASE + [order("o2", "b1", t(1), amount=20_000), refund("r1", "o1", "b1", 10_000)]
    ledger = new_ledger(RECEIPT)
    feed(ledger, events)
    assert ledger.settle("2026-01-07T23:59:59Z").order_ids == []
    assert ledger.settle(t(8)).order_ids == ["o1"]
    assert owed(ledger) == {"p1": (3000, 0)}  # o2 still waits for its receipt
    # C = 0 is fully refunded without any refund
    ledger = new_ledger(RECEIPT)
    feed(ledger, BASE[:2] + [order("o0", "b1", t(1), amount=0)])
    assert ledger.settle(t(8)).order_ids == ["o0"]
    # a partial refund does not make an order due
    ledger = new_ledger(RECEIPT)
    feed(ledger, BASE + [refund("r1", "o1", "b1", 9_999)])
    assert ledger.settle("2027-01-01T00:00:00Z").order_ids == []
    assert owed(ledger) == {}  # floor(1500 × 1 / 10000) = 0 pending, and nothing settled
    # unattributed orders are due on the same clock
    ledger = new_ledger(RECEIPT)
    feed(ledger, [order("o9", "b9", t(1), amount=500), fulfillment("f9", "o9", "b9", "received", t(2))])
    assert ledger.settle("2026-01-08T23:59:59Z").order_ids == []
    assert ledger.settle(t(9)).order_ids == ["o9"]


def test_order_clock_fulfillments_are_validated_recorded_and_change_nothing():
    events = BASE + [fulfillment("f1", "o1", "b1", "received", t(2)), fulfillment("f2", "o1", "b2", "shipped", t(2))]
    ledger = new_ledger(Rules())
    counts = feed(ledger, events)
    assert (counts.accepted, counts.dead_letters) == (4, 1) and dead_reasons(ledger) == ["fulfillment_buyer_mismatch"]
    assert ledger.settle("2026-01-15T23:59:59Z").order_ids == []  # 15d after the order, receipt or not
    assert ledger.settle(t(16)).order_ids == ["o1"]


def test_a_fulfillment_before_its_order_is_parked():
    ledger = new_ledger(RECEIPT)
    counts = feed(ledger, [fulfillment("f1", "o1", "b1", "received", t(2)), fulfillment("f2", "o1", "b2", "shipped", t(2))])
    assert (counts.parked, counts.dead_letters) == (2, 0) and ledger.engine.parked_fulfillments() == 2
    counts = feed(ledger, BASE)
    # the wrong buyer's becomes the dead letter when its order arrives, and is counted then
    assert (counts.accepted, counts.dead_letters) == (3, 1) and dead_reasons(ledger) == ["fulfillment_buyer_mismatch"]
    assert ledger.engine.parked_fulfillments() == 0
    # its event_id stays claimed: a redelivery is a duplicate, not a new dead letter
    counts = feed(ledger, [fulfillment("f2", "o1", "b2", "shipped", t(2)), fulfillment("f1", "o1", "b1", "received", t(2))])
    assert (counts.duplicates, counts.dead_letters) == (2, 0)
    assert ledger.settle(t(9)).order_ids == ["o1"]  # received Jan 2 → due Jan 9


def test_a_fulfillment_after_settlement_changes_nothing():
    ledger = new_ledger(RECEIPT)
    feed(ledger, BASE + [fulfillment("f1", "o1", "b1", "received", t(2))])
    assert ledger.settle(t(9)).order_ids == ["o1"]
    counts = feed(ledger, [fulfillment("f2", "o1", "b1", "received", t(1, 1)), fulfillment("f3", "o1", "b7", "shipped", t(3))])
    assert (counts.accepted, counts.dead_letters) == (1, 1) and dead_reasons(ledger) == ["fulfillment_buyer_mismatch"]
    assert owed(ledger) == {"p1": (0, 1500)}
    assert ledger.settle(t(30)).order_ids == []
    counts = feed(ledger, [fulfillment("f3", "o1", "b7", "shipped", t(3))])
    assert (counts.duplicates, counts.dead_letters) == (1, 0)


def test_scope_and_clock_together():
    ledger = new_ledger(Rules(scope="product", clock="receipt"))
    feed(ledger, SHARES + CLICKS + [order("o1", "b1", t(1, 4), TEA_CUP), fulfillment("f1", "o1", "b1", "received", t(3))])
    assert ledger.settle("2026-01-09T23:59:59Z").order_ids == []
    assert ledger.settle(t(10)).order_ids == ["o1"]
    assert owed(ledger) == {"p1": (0, 1500), "p3": (0, 750)}


# ------------------------------------------------------------------ explain
def test_explain_shows_coverage_winner_and_group_per_line_and_the_receipt_clock():
    from projections.explain import explain

    ledger = new_ledger(Rules(scope="product", clock="receipt"))
    feed(ledger, SHARES + CLICKS + [order("o1", "b1", t(1, 4), TEA_CUP), order("o2", "b1", t(1, 5), amount=100),
                                    fulfillment("f1", "o1", "b1", "shipped", t(3))])
    view = explain(ledger.engine, ledger.records(), "o1")
    tea, cup = view["coverage"]["lines"]
    assert [(c["event_id"], c["coverage"]) for c in tea["candidates"]] == [
        ("c3", "share s3 covers sku tea-500g: no merchant or product named"),
        ("c1", "share s1 covers sku tea-500g: same product"),
        ("c2", "share s2 does not cover sku tea-500g: merchant m2, the order's is m1")]
    assert (tea["winner"], tea["group"], cup["winner"], cup["group"]) == ("c1", "p1", "c3", "p3")
    assert cup["candidates"][1]["coverage"] == "share s1 does not cover sku cup: product tea, the line's is cup"
    assert [(g["promoter_id"], g["commissionable"], g["K"], g["level1"]["after_refunds"]) for g in view["coverage"]["groups"]] == [
        ("p1", 10_000, 3000, 1500), ("p3", 5000, 1500, 750)]
    assert view["fulfillment"] == {
        "clock": "receipt", "shipped_at": "2026-01-03T00:00:00.000000Z", "received_at": None, "return_window": "7d",
        "auto_receive_after": "10d", "receipt_instant": "2026-01-13T00:00:00.000000Z",
        "due_at": "2026-01-20T00:00:00.000000Z", "status": "awaiting receipt"}
    assert explain(ledger.engine, ledger.records(), "o2")["fulfillment"]["status"] == "awaiting shipment"
    # scope any, clock order: the explanation of before, fulfillments shown when there are some
    ledger = new_ledger(Rules())
    feed(ledger, BASE)
    assert "coverage" not in explain(ledger.engine, ledger.records(), "o1")
    assert "fulfillment" not in explain(ledger.engine, ledger.records(), "o1")
